# Training: one job trains models/{RUN}/, resuming from its latest checkpoint.
#
# The training state (checkpoints, history, TensorBoard logs) is not a declared output: Snakemake
# deletes the outputs of failed jobs, and a rerun must resume where the last one stopped. The
# declared output is results/{RUN}/train.done.json, written when training completes. Raising
# train.epochs changes the job's parameters, so Snakemake reruns it and training continues.
# `train` is a Snakemake checkpoint: evaluation lists models/{RUN}/checkpoints/ once it is done.

checkpoint train:
    input:
        shards=tfrecord_shards,
        label_map=f"{DATA}/label_map.yaml",
        stats=f"{DATA}/stats/summary.yaml",
        hparams=hparams_file,
    output:
        f"results/{RUN}/train.done.json",
    log:
        f"logs/{RUN}/train.log",
    params:
        flags=train_flags,
        launcher=train_launcher,
        model_dir=f"models/{RUN}",
    threads: 8
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=1,
    conda:
        MODEL_ENV
    shell:
        "{params.launcher} efficientdet train {params.flags} --model_dir={params.model_dir:q}"
        " --label_map={input.label_map:q} --dataset_stats={input.stats:q}"
        " --done={output:q} > {log:q} 2>&1"
