"""Distribution strategies (one device, several GPUs, several nodes, TPU) and mixed precision."""

import logging
import os

import keras
import tensorflow as tf

from efficientdet.errors import UserError

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# google/automl's --strategy values and ours that do the same.
ORIGINAL_STRATEGIES = {"": "default", "gpus": "mirrored", "multi-gpus": "multi_worker"}


def make_strategy(name, tpu=None):
    """The tf.distribute strategy called `name`.

    mirrored replicates over every GPU (over every logical CPU device on a machine without one);
    multi_worker reads the cluster from TF_CONFIG, or from SLURM's environment when a job
    step runs under srun (one task per node); tpu connects to `tpu` (a name or grpc:// address,
    default: the local TPU).
    google/automl's names (ORIGINAL_STRATEGIES) are accepted too.
    """
    name = ORIGINAL_STRATEGIES.get(name, name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=_cluster_resolver())
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(f"train.strategy: {name!r} is not one of {', '.join(STRATEGIES)}")


def _cluster_resolver():
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST"):
        return _slurm_resolver()
    raise UserError(
        "train.strategy: multi_worker needs a cluster: set TF_CONFIG or run under SLURM's srun"
    )


def _slurm_resolver():
    """The cluster of an srun step: one worker per task, on ports from 8888 on each node.

    SLURM's resolver hands each task of a node an equal share of the node's GPUs, and drops
    tasks left without one; tasks on CPU nodes (no CUDA_VISIBLE_DEVICES) are all kept and
    given no GPU.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if visible and visible != "-1":
        return tf.distribute.cluster_resolver.SlurmClusterResolver()
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or 1)
    return tf.distribute.cluster_resolver.SlurmClusterResolver(
        gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False
    )


def is_chief(strategy):
    """Whether this process writes checkpoints and logs for the whole cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def is_multi_worker(strategy):
    """Whether `strategy` spans several processes."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    tasks = resolver.cluster_spec().as_dict()
    return sum(len(tasks.get(kind, ())) for kind in ("chief", "worker")) > 1


def task_name(strategy):
    """'worker-1'-like name of this process in its cluster; '' for a single process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return ""
    return f"{resolver.task_type}-{resolver.task_id}"


def set_precision(mode, strategy):
    """Sets Keras' global dtype policy; `mode` is auto, float32, mixed_float16 or mixed_bfloat16.

    auto: mixed_bfloat16 on TPU, mixed_float16 when a GPU is visible, float32 otherwise.
    """
    if mode == "auto":
        if isinstance(strategy, tf.distribute.TPUStrategy):
            mode = "mixed_bfloat16"
        elif tf.config.list_physical_devices("GPU"):
            mode = "mixed_float16"
        else:
            mode = "float32"
    if mode not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise UserError(
            f"train.mixed_precision: {mode!r} is not auto, float32, mixed_float16 or mixed_bfloat16"
        )
    keras.mixed_precision.set_global_policy(mode)
    log.info("dtype policy %s", mode)
    return mode
