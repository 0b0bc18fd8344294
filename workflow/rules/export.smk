# Export: the run's last or best checkpoint (export.checkpoint), with its averaged weights, as
# SavedModel, frozen graph, TFLite (fp32, fp16, int8) and ONNX in models/{RUN}/export/. The
# folder is written under a temporary name and renamed when complete. Its metadata.json carries
# the COCO metrics of the exported checkpoint, so that checkpoint is evaluated first ("best"
# evaluates them all).

rule export:
    input:
        done=f"results/{RUN}/train.done.json",
        evaluations=export_evaluations,
        label_map=f"{DATA}/label_map.yaml",
        calibration=lambda wildcards: split_shards("train"),
    output:
        directory(f"models/{RUN}/export"),
    log:
        f"logs/{RUN}/export.log",
    params:
        run_dir=f"models/{RUN}",
        select=EXPORT_CONFIG["checkpoint"],
        eval_dir=f"results/{RUN}/eval",
        calibration=lambda wildcards: split_file_pattern("train"),
        calibration_images=EXPORT_CONFIG["calibration_images"],
        run=RUN,
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    conda:
        MODEL_ENV
    shell:
        "efficientdet export --checkpoint={params.run_dir:q} --select={params.select}"
        " --eval_dir={params.eval_dir:q} --label_map={input.label_map:q}"
        " --calibration_file_pattern={params.calibration:q}"
        " --calibration_images={params.calibration_images} --run={params.run:q}"
        " --output_dir={output:q} > {log:q} 2>&1"
