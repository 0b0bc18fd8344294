# Inference: the exported model (infer.backend picks the format) on infer.images, by default
# the validation images, into results/{RUN}/predictions/: annotated images, detections.csv and
# detections.json.

import shlex

INFER_CONFIG = config["infer"]
EXPORTED_FILES = {
    "saved_model": "saved_model",
    "frozen_graph": "frozen_model.pb",
    "tflite_fp32": "model_fp32.tflite",
    "tflite_fp16": "model_fp16.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}


def infer_images(wildcards):
    """The validation list and the unpacked dataset when infer.images is null, else nothing
    (a user's folder or glob is not a file Snakemake can track)."""
    if INFER_CONFIG["images"]:
        return {}
    return {"list": f"{DATA}/splits/val.txt", "root": f"{DATA}/voc"}


def infer_images_option(wildcards, input):
    if INFER_CONFIG["images"]:
        return f"--images={shlex.quote(INFER_CONFIG['images'])}"
    return f"--images={shlex.quote(input.list)} --image_root={shlex.quote(input.root)}"


rule infer:
    input:
        unpack(infer_images),
        export=rules.freeze.output[0],
    output:
        directory(f"results/{RUN}/predictions"),
    log:
        f"logs/{RUN}/infer.log",
    params:
        model=lambda wildcards, input: f"{input.export}/{EXPORTED_FILES[INFER_CONFIG['backend']]}",
        images=infer_images_option,
        min_score=INFER_CONFIG["min_score"],
        batch_size=INFER_CONFIG["batch_size"],
    threads: 4
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "efficientdet infer --model={params.model:q} {params.images}"
        " --min_score={params.min_score} --batch_size={params.batch_size}"
        " --output_dir={output:q} > {log:q} 2>&1"
