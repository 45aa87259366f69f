"""Deploy published layers into a folder, run, verify, remove and garbage-collect them."""

from venvlayers.deploy.deploy import DeployResult, deploy
from venvlayers.deploy.gc import gc, remove_apps
from venvlayers.deploy.run import run_app
from venvlayers.deploy.verify import LayerDrift, VerifyReport, verify

__all__ = [
    "DeployResult",
    "LayerDrift",
    "VerifyReport",
    "deploy",
    "gc",
    "remove_apps",
    "run_app",
    "verify",
]
