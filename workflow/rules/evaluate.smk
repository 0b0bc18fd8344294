# Evaluation: one job per training checkpoint, then one table and plot of them all.
#
# Checkpoints are not Snakemake outputs (the training state in models/{run}/ must outlive
# failed or re-run jobs), so the evaluations to make are read from disk once `train` (a
# Snakemake checkpoint) is done: every models/{run}/checkpoints/ckpt-{step}.index. Those that
# already have results/{run}/eval/ckpt-{step}.json are up to date, so after training goes on
# only the new checkpoints are evaluated. Checkpoints deleted since (keep-last-N) are simply
# no longer inputs; their evaluations stay in the folder and in metrics.csv.

rule evaluate_checkpoint:
    input:
        checkpoint=f"{CHECKPOINT_DIR}/ckpt-{{step}}.index",
        shards=lambda wildcards: split_shards("val"),
        ground_truth=f"{DATA}/val_coco.json",
    output:
        json=f"{EVAL}/ckpt-{{step}}.json",
        plot=f"{EVAL}/ckpt-{{step}}.png",
    log:
        f"logs/{RUN}/evaluate/ckpt-{{step}}.log",
    wildcard_constraints:
        step=r"\d+",
    params:
        checkpoint=lambda wildcards, input: input.checkpoint.removesuffix(".index"),
        pattern=lambda wildcards: split_file_pattern("val"),
        model_name=config["model"]["name"],
        batch_size=config["train"]["batch_size"],
        samples=eval_samples_option,
        tensorboard=f"models/{RUN}/logs/validation",
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    conda:
        MODEL_ENV
    shell:
        "efficientdet evaluate_checkpoint --checkpoint={params.checkpoint:q}"
        " --model_name={params.model_name:q} --val_file_pattern={params.pattern:q}"
        " --val_json_file={input.ground_truth:q}"
        " --batch_size={params.batch_size} {params.samples}"
        " --output={output.json:q} --plot={output.plot:q}"
        " --tensorboard_dir={params.tensorboard:q} > {log:q} 2>&1"


rule evaluate:
    input:
        checkpoint_evaluations,
    output:
        table=f"{EVAL}/metrics.csv",
        plot=f"{EVAL}/metrics.png",
    log:
        f"logs/{RUN}/evaluate.log",
    params:
        folder=lambda wildcards, output: os.path.dirname(output.table),
    # Seconds of pandas and matplotlib: not worth a cluster job.
    localrule: True
    conda:
        DATA_ENV
    shell:
        "efficientdet evaluate --eval_dir={params.folder:q} --output={output.table:q}"
        " --plot={output.plot:q} > {log:q} 2>&1"
