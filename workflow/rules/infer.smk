# Inference: the exported model (infer.backend picks the format) on infer.images, by default
# the validation images, into results/{RUN}/predictions/: annotated images, detections.csv and
# detections.json.

rule infer:
    input:
        unpack(infer_images),
        export=rules.export.output[0],
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
    conda:
        MODEL_ENV
    shell:
        "efficientdet infer --model={params.model:q} {params.images}"
        " --min_score={params.min_score} --batch_size={params.batch_size}"
        " --output_dir={output:q} > {log:q} 2>&1"
