# Evaluation: one job per training checkpoint, then one table and plot of them all.
#
# Checkpoints are not Snakemake outputs (the training state in models/{run}/ must outlive
# failed or re-run jobs), so the evaluations to make are listed once `train` (a Snakemake
# checkpoint) is done: every models/{run}/checkpoints/ckpt-{step}.index on disk, or in
# train.done.json where that folder is in remote storage (checkpoint_files). Those that
# already have results/{run}/eval/ckpt-{step}.json are up to date, so after training goes on
# only the new checkpoints are evaluated. On a shared file system, the evaluations of
# checkpoints deleted since (keep-last-N) stay inputs of the table, as they stay in it.
#
# The table also names train.done.json itself: Snakemake decides whether a checkpoint job is
# done before it knows that job's parameters (train's depend on the split checkpoint), so
# through `checkpoints.train.get()` alone `snakemake evaluate` would miss a changed train.epochs.


rule evaluate_checkpoint:
    input:
        checkpoint=checkpoint_of_step,
        shards=lambda wildcards: split_shards("val"),
        ground_truth=DATA.val_coco,
    output:
        json=RUN_FILES.evaluation("{step}"),
        plot=RUN_FILES.evaluation("{step}").with_suffix(".png"),
    log:
        f"logs/{RUN}/evaluate/ckpt-{{step}}.log",
    wildcard_constraints:
        step=r"\d+",
    conda:
        MODEL_ENV
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    params:
        checkpoint=lambda wildcards, input: os.path.join(
            os.path.dirname(input.checkpoint[0]), f"ckpt-{wildcards.step}"
        ),
        pattern=lambda wildcards: split_file_pattern("val"),
        model_name=config["model"]["name"],
        batch_size=config["train"]["batch_size"],
        samples=eval_samples_option,
        # Beside training's logs; not kept where models/{RUN}/ is in remote storage.
        tensorboard=RUN_FILES.tensorboard / "validation" if STORAGE is None else "",
    shell:
        "efficientdet evaluate_checkpoint --checkpoint={params.checkpoint:q}"
        " --model_name={params.model_name:q} --val_file_pattern={params.pattern:q}"
        " --val_json_file={input.ground_truth:q}"
        " --batch_size={params.batch_size} {params.samples}"
        " --output={output.json:q} --plot={output.plot:q}"
        " --tensorboard_dir={params.tensorboard:q} > {log:q} 2>&1"


rule evaluate:
    input:
        done=RUN_FILES.done,
        evaluations=checkpoint_evaluations,
    output:
        table=report(
            RUN_FILES.metrics_table,
            caption="../report/metrics_table.rst",
            category="Evaluation",
            subcategory="All checkpoints",
        ),
        plot=report(
            RUN_FILES.metrics_plot,
            caption="../report/metrics_plot.rst",
            category="Evaluation",
            subcategory="All checkpoints",
        ),
    log:
        f"logs/{RUN}/evaluate.log",
    # Seconds of pandas and matplotlib: not worth a cluster job.
    localrule: True
    conda:
        DATA_ENV
    params:
        folder=lambda wildcards, output: os.path.dirname(output.table),
    shell:
        "efficientdet evaluate --eval_dir={params.folder:q} --output={output.table:q}"
        " --plot={output.plot:q} > {log:q} 2>&1"
