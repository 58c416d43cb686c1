"""The only caller of MLflow: log a run, register its bundle, move aliases, load bundles.

Calls to MLflow go through one circuit breaker per tracking URI and process: once MLflow has
failed repeatedly, calls fail at once (RegistryUnavailableError) instead of each waiting through
MLflow's own HTTP retries. A version whose bundle this home downloaded and checked against the
registry before is then loaded from that verified local copy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.breakers import Breaker, BreakerOpenError
from driftline.config import Settings
from driftline.contracts import CHALLENGER, CHAMPION
from driftline.registry.bundle import (
    EQUITY_FILE,
    EVALUATION_FILE,
    IMPORTANCES_FILE,
    MANIFEST,
    SPEC_FILE,
    WINDOW_FILE,
    ArtifactIntegrityError,
    BundleContents,
    ModelBundle,
    read_bundle,
    write_bundle,
)

log = logging.getLogger(__name__)
# Version tags `sha256/<file>`: each bundle file's digest, kept in the registry's database apart
# from the artifact store, so a bundle altered there (manifest included) is refused on load.
SHA256_TAG = "sha256/"
# The digests the registry recorded for a downloaded version, kept beside the download cache
# (`<version>.verified.json`) once they matched, so the copy can be trusted while MLflow is down.
VERIFIED_SUFFIX = ".verified.json"
# MLflow's error codes for a server that failed or could not be reached (not a refused request).
_UNREACHABLE_CODES = frozenset({"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"})
# What a stock MLflow environment needs to load the pyfunc, besides the driftline package itself.
_RUNTIME_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "xgboost",
    "onnxruntime",
    "joblib",
)


class RegistryError(RuntimeError):
    """The registry could not be read or written."""


class RegistryUnavailableError(RegistryError):
    """MLflow could not be reached, or its circuit is open after repeated failures."""


class ModelNotFoundError(LookupError):
    """No version of the model matches the reference (alias or version number)."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A registered version: number, aliases pointing at it, tags, the run that made it."""

    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    run_id: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of registering a training run."""

    version: str
    aliases: tuple[str, ...]
    run_id: str
    onnx_max_abs_diff: dict[str, float]


class Registry:
    """Versions of one registered model (`settings.model_name`) in the configured MLflow."""

    def __init__(self, settings: Settings, *, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or settings.registry.model_name
        self._client_instance: Any = None

    # --- writing --------------------------------------------------------------------------
    def register(
        self,
        contents: BundleContents,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        input_example: pd.DataFrame,
        run_name: str | None = None,
    ) -> Registration:
        """Log a run with its evidence and register its bundle as a new version.

        The bundle is written and its ONNX parity checked before MLflow is touched, so a refused
        version leaves no run and no version behind. The new version becomes `challenger`; the
        model's first version also becomes `champion`.
        """
        with tempfile.TemporaryDirectory(prefix="dl-bundle-") as scratch:
            bundle_dir = Path(scratch) / "bundle"
            parity = write_bundle(
                bundle_dir, contents, onnx_tolerance=self.settings.rollout.gates.onnx_tolerance
            )
            bundle = read_bundle(bundle_dir, name=self.name)
            version, run_id = self._log_and_register(
                bundle,
                params=params,
                metrics=metrics,
                tags=tags,
                input_example=input_example,
                run_name=run_name,
            )
        aliases = [CHALLENGER]
        if self.alias_version(CHAMPION) is None:
            aliases.append(CHAMPION)
        for alias in aliases:
            self.set_alias(alias, version)
        return Registration(version, tuple(aliases), run_id, parity)

    def set_alias(self, alias: str, version: str | int) -> None:
        """Point `alias` at `version`."""
        self._call(self._client.set_registered_model_alias, self.name, alias, str(version))

    def set_version_tag(self, version: str | int, key: str, value: str) -> None:
        """Tag a version (rollout results, gate outcomes)."""
        self._call(self._client.set_model_version_tag, self.name, str(version), key, value)

    # --- reading --------------------------------------------------------------------------
    def alias_version(self, alias: str) -> str | None:
        """The version `alias` points at, or None."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        try:
            with self._guarded():
                return str(self._client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as error:
            if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise self._error(error) from None

    def resolve(self, ref: str | int) -> str:
        """The version number `ref` (an alias or a number) names; ModelNotFoundError if none."""
        ref = str(ref)
        if ref.isdigit():
            if ref not in {v.version for v in self.versions()}:
                raise ModelNotFoundError(f"{self.name} has no version {ref}")
            return ref
        version = self.alias_version(ref)
        if version is None:
            raise ModelNotFoundError(f"{self.name} has no version with alias {ref!r}")
        return version

    def versions(self) -> list[VersionInfo]:
        """Every version of the model, newest first."""
        found = self._call(self._client.search_model_versions, f"name = '{self.name}'")
        if not found:
            return []
        # Search results leave aliases out; the registered model lists them all at once.
        model = self._call(self._client.get_registered_model, self.name)
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        return [
            VersionInfo(
                version=str(v.version),
                aliases=tuple(sorted(aliases.get(str(v.version), []))),
                tags=dict(v.tags or {}),
                run_id=v.run_id,
                created_ms=int(v.creation_timestamp or 0),
            )
            for v in sorted(found, key=lambda v: int(v.version), reverse=True)
        ]

    def load_bundle(self, ref: str | int = CHAMPION) -> ModelBundle:
        """The bundle of the version `ref` names, downloaded once into a per-version cache.

        With MLflow unreachable, a version number whose cached copy was verified against the
        registry before loads from that copy (its files checked against the same digests).
        """
        try:
            version = self.resolve(ref)
            target = self._cache(version)
            if not (target / MANIFEST).is_file():
                self._download(version, target)
            bundle = read_bundle(target, name=self.name, version=version)
            self._check_recorded(version, bundle)
        except RegistryUnavailableError as error:
            local = self._verified_copy(str(ref))
            if local is None:
                raise
            log.warning(
                "MLflow unreachable: serving %s version %s from its verified local copy (%s)",
                self.name,
                ref,
                error,
            )
            return local
        return bundle

    def _cache(self, version: str) -> Path:
        return self.settings.home / "bundles" / self.name / version

    def _verified_copy(self, ref: str) -> ModelBundle | None:
        """The cached bundle of version `ref` if it matches the digests once recorded for it."""
        target = self._cache(ref)
        record = target.with_name(ref + VERIFIED_SUFFIX)
        if not ref.isdigit() or not record.is_file() or not (target / MANIFEST).is_file():
            return None
        bundle = read_bundle(target, name=self.name, version=ref)
        recorded = json.loads(record.read_text())
        if recorded != bundle.sha256:
            raise ArtifactIntegrityError(
                f"{self.name} version {ref}: the local copy differs from the digests the "
                "registry recorded; refusing to load it while MLflow is unreachable"
            )
        return bundle

    def _check_recorded(self, version: str, bundle: ModelBundle) -> None:
        info = self._call(self._client.get_model_version, self.name, version)
        recorded = {
            k.removeprefix(SHA256_TAG): v
            for k, v in (info.tags or {}).items()
            if k.startswith(SHA256_TAG)
        }
        if recorded == bundle.sha256:
            record = self._cache(version).with_name(version + VERIFIED_SUFFIX)
            if not record.is_file():
                _write_atomically(record, json.dumps(recorded, sort_keys=True))
        if recorded and recorded != bundle.sha256:
            changed = sorted(
                p
                for p in recorded.keys() | bundle.sha256.keys()
                if recorded.get(p) != bundle.sha256.get(p)
            )
            raise ArtifactIntegrityError(
                f"{self.name} version {version}: the bundle's SHA-256 of {', '.join(changed[:3])} "
                "differs from the one the registry recorded at registration; refusing to load it"
            )

    def model_uri(self, ref: str | int) -> str:
        """The `models:/` URI stock MLflow tools load `ref` from."""
        ref = str(ref)
        return f"models:/{self.name}/{ref}" if ref.isdigit() else f"models:/{self.name}@{ref}"

    # --- MLflow ---------------------------------------------------------------------------
    @property
    def _client(self) -> Any:
        if self._client_instance is None:
            from mlflow import MlflowClient  # noqa: PLC0415  (MLflow takes seconds to import)

            uri = self.settings.tracking_uri
            if uri.startswith("sqlite:"):
                self.settings.ensure_home()
            self._client_instance = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client_instance

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        try:
            with self._guarded():
                return method(*args, **kwargs)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ModelNotFoundError(f"{self.name}: {error.message}") from None
            raise self._error(error) from None
        except OSError as error:  # requests' errors too: MLflow's HTTP client gave up
            if mlflow_unreachable(error):
                raise self._error(error) from None
            raise

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """MLflow's circuit around one call; RegistryUnavailableError while it is open."""
        try:
            with mlflow_breaker(self.settings):
                yield
        except BreakerOpenError as error:
            raise RegistryUnavailableError(
                f"registry {self.settings.tracking_uri}: {error}"
            ) from None

    def _error(self, error: Exception) -> RegistryError:
        message = getattr(error, "message", None) or str(error)
        kind = RegistryUnavailableError if mlflow_unreachable(error) else RegistryError
        return kind(f"registry {self.settings.tracking_uri}: {message}")

    def _experiment_id(self) -> str:
        experiment = self._call(self._client.get_experiment_by_name, self.name)
        if experiment is not None:
            return str(experiment.experiment_id)
        # Artifacts go under the configured root, not MLflow's default ./mlruns.
        location = (self.settings.artifact_root / self.name).as_uri()
        created = self._call(self._client.create_experiment, self.name, artifact_location=location)
        return str(created)

    def _log_and_register(
        self,
        bundle: ModelBundle,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        input_example: pd.DataFrame,
        run_name: str | None,
    ) -> tuple[str, str]:
        import mlflow  # noqa: PLC0415

        from driftline.registry.pyfunc import BUNDLE_ARTIFACT, signature  # noqa: PLC0415

        uri = self.settings.tracking_uri
        with _environment_kept("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            # MLflow's setters also export these variables, which Settings reads: without the
            # guard, every later Settings() of this process would adopt this registry.
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
        members = [m.name for m in bundle.members]
        with mlflow.start_run(experiment_id=self._experiment_id(), run_name=run_name) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics(dict(metrics))
            mlflow.set_tags(dict(tags))
            for file in (EVALUATION_FILE, IMPORTANCES_FILE, EQUITY_FILE, SPEC_FILE, WINDOW_FILE):
                mlflow.log_artifact(str(bundle.local_dir / file), artifact_path="evidence")
            info = mlflow.pyfunc.log_model(
                name="model",
                # A code path, not an object: MLflow then stores no pickle of our class.
                python_model=str(Path(__file__).with_name("model_code.py")),
                artifacts={BUNDLE_ARTIFACT: str(bundle.local_dir)},
                signature=signature(bundle.feature_names, members),
                input_example=input_example,
                pip_requirements=_pip_requirements(),
                registered_model_name=self.name,
            )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            self.set_version_tag(version, key, value)
        for path, digest in bundle.sha256.items():
            self.set_version_tag(version, f"{SHA256_TAG}{path}", digest)
        return version, str(run.info.run_id)

    def _download(self, version: str, target: Path) -> None:
        import mlflow.artifacts  # noqa: PLC0415

        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            # Resolve the version's storage location here: `models:/` URIs would be resolved
            # against MLflow's process-global registry, not this registry's settings.
            location = self._call(self._client.get_model_version_download_uri, self.name, version)
            self._call(
                mlflow.artifacts.download_artifacts,
                artifact_uri=location,
                dst_path=str(scratch),
                tracking_uri=self.settings.tracking_uri,
            )
            manifest = next(scratch.rglob(MANIFEST), None)
            if manifest is None:
                raise RegistryError(f"{self.name} version {version} carries no bundle")
            # Rename into place so concurrent loaders never see half a bundle.
            try:
                manifest.parent.rename(target)
            except OSError:
                if not (target / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


_BREAKERS: dict[str, Breaker] = {}


def mlflow_breaker(settings: Settings) -> Breaker:
    """This process's circuit breaker on the MLflow at `settings.tracking_uri`."""
    uri = settings.tracking_uri
    breaker = _BREAKERS.get(uri)
    if breaker is None:
        breaker = Breaker.from_settings("mlflow", settings.breakers, mlflow_unreachable)
        _BREAKERS[uri] = breaker
    return breaker


def mlflow_unreachable(error: BaseException) -> bool:
    """Whether `error` means MLflow failed or could not be reached (not that it refused)."""
    import requests  # noqa: PLC0415  (MLflow's HTTP client)
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    if isinstance(error, RegistryUnavailableError | requests.RequestException):
        return True
    if isinstance(error, MlflowException):
        return error.error_code in _UNREACHABLE_CODES
    return isinstance(error, ConnectionError | TimeoutError)


def _write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(text)
    scratch.replace(path)


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]  # MLflow's limit on a parameter value


def _pip_requirements() -> list[str]:
    # Listed explicitly: MLflow's inference imports the model in a subprocess and takes seconds.
    pins = []
    for package in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


@contextlib.contextmanager
def _environment_kept(*names: str) -> Iterator[None]:
    """Restore the named environment variables on exit, whatever the block set."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
