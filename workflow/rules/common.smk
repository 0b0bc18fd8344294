from snakemake.utils import validate


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

DATASET = config["dataset"]["name"]
DATA = f"results/{DATASET}"
# A training run: models/{RUN}/ holds its state, results/{RUN}/ what is made from it.
RUN = config["train"]["run"] or f"{DATASET}-{config['model']['name']}"


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    split=r"train|val",
