"""MLflow "model from code": the file a pyfunc version is logged from, so no pickle is stored.

MLflow copies this file into the model and runs it on load; it needs the `driftline` package.
"""

from mlflow.models import set_model

from driftline.registry.pyfunc import EnsemblePyfunc

set_model(EnsemblePyfunc())
