# Export: the run's last or best checkpoint (export.checkpoint), with its averaged weights, as
# SavedModel, frozen graph, TFLite (fp32, fp16, int8) and ONNX in models/{RUN}/export/. The
# folder is written under a temporary name and renamed when complete. Its metadata.json carries
# the COCO metrics of the exported checkpoint, so that checkpoint is evaluated first ("best"
# evaluates them all).


rule export:
    input:
        done=RUN_FILES.done,
        checkpoints=stored_checkpoints,
        evaluations=export_evaluations,
        label_map=DATA.label_map,
        calibration=lambda wildcards: split_shards("train"),
    output:
        report(
            directory(RUN_FILES.export),
            patterns=["{name}.json"],
            caption="../report/export_metadata.rst",
            category="Export",
        ),
    log:
        f"logs/{RUN}/export.log",
    conda:
        MODEL_ENV
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        run_dir=lambda wildcards, output: os.path.dirname(output[0]),
        select=EXPORT_CONFIG["checkpoint"],
        eval_dir=on_this_machine(RUN_FILES.eval_dir),
        calibration=lambda wildcards: split_file_pattern("train"),
        calibration_images=EXPORT_CONFIG["calibration_images"],
        run=RUN,
    shell:
        "efficientdet export --checkpoint={params.run_dir:q} --select={params.select}"
        " --eval_dir={params.eval_dir:q} --label_map={input.label_map:q}"
        " --calibration_file_pattern={params.calibration:q}"
        " --calibration_images={params.calibration_images} --run={params.run:q}"
        " --output_dir={output:q} > {log:q} 2>&1"


rule export_report:
    input:
        unpack(infer_images),
        export=rules.export.output[0],
        evaluations=evaluations_with_plots,
    output:
        formats=report(
            RUN_FILES.export_report / "formats.csv",
            caption="../report/formats.rst",
            category="Export",
        ),
        pr_curves=report(
            RUN_FILES.export_report / "pr_curves.png",
            caption="../report/pr_curves.rst",
            category="Evaluation",
            subcategory="Exported checkpoint",
        ),
        per_class=report(
            RUN_FILES.export_report / "per_class_ap.csv",
            caption="../report/per_class_ap.rst",
            category="Evaluation",
            subcategory="Exported checkpoint",
        ),
    log:
        f"logs/{RUN}/export_report.log",
    conda:
        MODEL_ENV
    threads: 4
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        images=infer_images_option,
        eval_dir=on_this_machine(RUN_FILES.eval_dir),
        min_score=INFER_CONFIG["min_score"],
    shell:
        "efficientdet export_report --export_dir={input.export:q} {params.images}"
        " --eval_dir={params.eval_dir:q} --min_score={params.min_score} --formats={output.formats:q}"
        " --pr_curves={output.pr_curves:q} --per_class={output.per_class:q} > {log:q} 2>&1"
