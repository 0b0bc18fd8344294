# Inference: the exported model (infer.backend picks the format) on infer.images, by default
# the validation images, into results/{RUN}/predictions/: annotated images, detections.csv and
# detections.json.


rule infer:
    input:
        unpack(infer_images),
        export=rules.export.output[0],
    output:
        report(
            directory(RUN_FILES.predictions),
            patterns=["images/{image}", "{table}.csv"],
            caption="../report/predictions.rst",
            category="Predictions",
        ),
    log:
        f"logs/{RUN}/infer.log",
    conda:
        MODEL_ENV
    threads: 4
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # Spelled without `input`: Snakemake does not compare params computed from it, and a
        # change of backend or images must rerun inference.
        model=on_this_machine(f"{RUN_FILES.export}/{EXPORTED_FILES[INFER_CONFIG['backend']]}"),
        images=infer_images_option,
        min_score=INFER_CONFIG["min_score"],
        batch_size=INFER_CONFIG["batch_size"],
    shell:
        "efficientdet infer --model={params.model:q} {params.images}"
        " --min_score={params.min_score} --batch_size={params.batch_size}"
        " --output_dir={output:q} > {log:q} 2>&1"
