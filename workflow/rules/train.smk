# Training: one job trains models/{RUN}/, resuming from its latest checkpoint.
#
# The training state (checkpoints, history, TensorBoard logs) is not a declared output: Snakemake
# deletes the outputs of failed jobs, and a rerun must resume where the last one stopped. The
# declared output is results/{RUN}/train.done.json, written when training completes. Raising
# train.epochs changes the job's parameters, so Snakemake reruns it and training continues.
# `train` is a Snakemake checkpoint: evaluation lists models/{RUN}/checkpoints/ once it is done.
# Rules read files of models/{RUN}/ through input functions that wait for it (trained, ...):
# with remote default storage, the job keeps the folder in the storage as it trains.


checkpoint train:
    input:
        shards=tfrecord_shards,
        label_map=DATA.label_map,
        stats=DATA.stats_summary,
        hparams=hparams_file,
    output:
        report(
            RUN_FILES.done,
            caption="../report/train_done.rst",
            category="Training",
        ),
    log:
        f"logs/{RUN}/train.log",
    conda:
        MODEL_ENV
    threads: 8
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=1,
    params:
        flags=train_flags,
        launcher=train_launcher,
        model_dir=on_this_machine(RUN_FILES.model_dir),
    shell:
        "{params.launcher} efficientdet train {params.flags} --model_dir={params.model_dir:q}"
        " --label_map={input.label_map:q} --dataset_stats={input.stats:q}"
        " --done={output:q} > {log:q} 2>&1"


rule training_curves:
    input:
        done=rules.train.output[0],
        history=trained(RUN_FILES.history),
        description=trained(RUN_FILES.description),
    output:
        plot=report(
            RUN_FILES.training_curves,
            caption="../report/training_curves.rst",
            category="Training",
        ),
        description=report(
            RUN_FILES.reported_description,
            caption="../report/model_description.rst",
            category="Training",
        ),
    log:
        f"logs/{RUN}/training_curves.log",
    localrule: True
    conda:
        DATA_ENV
    shell:
        "efficientdet training_curves --history={input.history:q} --output={output.plot:q}"
        " --description={input.description:q} --description_output={output.description:q}"
        " > {log:q} 2>&1"


rule inspect_pipeline:
    input:
        done=rules.train.output[0],
        description=trained(RUN_FILES.description),
        train=lambda wildcards: split_shards("train"),
        val=lambda wildcards: split_shards("val"),
    output:
        train=report(
            directory(RUN_FILES.inspect_pipeline("train")),
            patterns=["{image}.jpg"],
            caption="../report/inspect_pipeline.rst",
            category="Data",
            subcategory="Pipeline: train view (augmented)",
        ),
        eval=report(
            directory(RUN_FILES.inspect_pipeline("eval")),
            patterns=["{image}.jpg"],
            caption="../report/inspect_pipeline.rst",
            category="Data",
            subcategory="Pipeline: eval view",
        ),
    log:
        f"logs/{RUN}/inspect_pipeline.log",
    conda:
        MODEL_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        train=lambda wildcards: split_file_pattern("train"),
        val=lambda wildcards: split_file_pattern("val"),
        images=DATASET_CONFIG["inspect_images"],
    shell:
        "(efficientdet inspect_pipeline --model_description={input.description:q}"
        " --file_pattern={params.train:q} --view=train --num_images={params.images}"
        " --output={output.train:q}"
        " && efficientdet inspect_pipeline --model_description={input.description:q}"
        " --file_pattern={params.val:q} --view=eval --num_images={params.images}"
        " --output={output.eval:q}) > {log:q} 2>&1"
