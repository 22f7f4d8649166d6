"""Static checks of the deployment files: docker-compose.yml, deploy/Dockerfile, .dockerignore,
Prometheus (scrape config, alert rules) and Grafana (provisioning, dashboard).

Nothing here needs a Docker engine. Metric names are checked against what ``core.metrics``
really registers (walking ``prometheus_client.REGISTRY``), settings against
``core.settings.Settings``. ``docker compose config`` (or ``docker-compose config``) and
``promtool`` run for real: ``make test`` installs them; a missing one fails the test
(``LINEINSPECT_ALLOW_SKIP=1`` skips).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.servers import missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MAKEFILE = ROOT / "Makefile"
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DATASOURCE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "lineinspect.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "lineinspect.json"

REQUIRED_SERVICES = {
    "redis", "postgres", "migrate", "acquire", "infer", "api", "prometheus", "grafana",
}
#: Services that run the lineinspect image, with the CLI command each one runs.
LINEINSPECT_COMMANDS = {
    "migrate": ["migrate"],
    "acquire": ["acquire"],
    "infer": ["infer"],
    "api": ["serve", "--host", "0.0.0.0"],
}
#: Environment every lineinspect service gets (the brief of the compose stack).
REQUIRED_ENV = {
    "LINEINSPECT_REDIS_URL": "redis://redis:6379/0",
    "LINEINSPECT_DATABASE_URL":
        "postgresql+psycopg://lineinspect:lineinspect@postgres:5432/lineinspect",
    "LINEINSPECT_RECIPE": "steel-strip",
    "LINEINSPECT_LINE_ID": "line-1",
    "LINEINSPECT_DATA_DIR": "/data",
}
#: ``LINEINSPECT_*`` variables the compose file may set that are not (yet) Settings fields:
#: the workers' Prometheus port, read by the acquire/infer commands.
KNOWN_EXTRA_LINEINSPECT_VARS = {"LINEINSPECT_METRICS_PORT"}
#: Other variables the lineinspect services may set.
KNOWN_OTHER_VARS = {"PYLON_CAMEMU"}
WORKER_METRICS_PORT = 9100
METRIC_NAME = re.compile(r"\blineinspect_[a-zA-Z0-9_:]+")


# --------------------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"])))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_all_panels(p.get("panels") or []))  # collapsed rows nest their panels
    return out


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets") or [] if t.get("expr")]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def exported_metrics() -> set[str]:
    """Every sample name the service's metrics expose, from the registry (no fixed list)."""
    import prometheus_client

    import core.metrics  # noqa: F401 - registers the metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in prometheus_client.REGISTRY.collect():
        if not family.name.startswith("lineinspect_"):
            continue
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    assert names, "core.metrics registered no lineinspect_* metric"
    return names


@pytest.fixture(scope="module")
def line_labelled_metrics() -> set[str]:
    """Base names of the core.metrics metrics that carry a ``line`` label."""
    from prometheus_client.metrics import MetricWrapperBase

    import core.metrics

    out = set()
    for obj in vars(core.metrics).values():
        if isinstance(obj, MetricWrapperBase) and "line" in obj._labelnames:
            out.add(obj._name)
    assert out
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def prom_config() -> dict[str, Any]:
    return _load_yaml(PROM_CONFIG)


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    data = _load_yaml(ALERTS)
    rules = [r for g in data["groups"] for r in g["rules"]]
    assert rules
    return rules


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- docker-compose.yml


def test_compose_has_every_service(services: dict[str, Any]) -> None:
    assert REQUIRED_SERVICES <= set(services), REQUIRED_SERVICES - set(services)


def test_lineinspect_services_build_the_image_and_run_the_cli(services: dict[str, Any]) -> None:
    for name, command in LINEINSPECT_COMMANDS.items():
        svc = services[name]
        build = svc.get("build")
        assert isinstance(build, dict), f"{name}: builds the lineinspect image"
        assert (ROOT / build.get("context", ".")).resolve() == ROOT
        assert (ROOT / build.get("context", ".") / build["dockerfile"]).resolve() == DOCKERFILE
        assert _command(svc) == command, name


def test_infer_is_scalable(services: dict[str, Any]) -> None:
    infer = services["infer"]
    assert "container_name" not in infer, "a fixed container_name prevents --scale"
    assert not infer.get("ports"), "published host ports collide between replicas"
    assert int(infer["deploy"]["replicas"]) >= 2


def test_only_the_api_publishes_lineinspect_ports(services: dict[str, Any]) -> None:
    assert any(str(p).split(":")[0] == "8000" for p in services["api"]["ports"])
    for name in ("migrate", "acquire", "infer"):
        assert not services[name].get("ports"), name


def test_environment_uses_real_settings(services: dict[str, Any]) -> None:
    from core.settings import Settings

    fields = {"LINEINSPECT_" + f.upper() for f in Settings.model_fields}
    for name in LINEINSPECT_COMMANDS:
        env = _env(services[name])
        for key, value in REQUIRED_ENV.items():
            assert env.get(key) == value, f"{name}: {key}"
        for key in env:
            if key.startswith("LINEINSPECT_"):
                assert key in fields | KNOWN_EXTRA_LINEINSPECT_VARS, f"{name}: unknown {key}"
            else:
                assert key in KNOWN_OTHER_VARS, f"{name}: unexpected variable {key}"
        # The values parse as settings (types), as the service would read them.
        known = {k[len("LINEINSPECT_"):].lower(): v for k, v in env.items() if k in fields}
        Settings.model_validate(known)


def test_recipe_exists(services: dict[str, Any]) -> None:
    from core.settings import RECIPES_DIR

    for name in LINEINSPECT_COMMANDS:
        recipe = _env(services[name])["LINEINSPECT_RECIPE"]
        assert (RECIPES_DIR / f"{recipe}.yaml").is_file(), recipe


def test_acquire_uses_the_camera_emulator_by_default(services: dict[str, Any]) -> None:
    assert _env(services["acquire"]).get("PYLON_CAMEMU") == "1"
    assert "network_mode" not in services["acquire"]
    # ... and the compose file tells how to run a real GigE camera.
    assert re.search(r"#\s*network_mode:\s*host", COMPOSE_FILE.read_text(encoding="utf-8"))


def test_workers_metrics_port(services: dict[str, Any]) -> None:
    for name in ("acquire", "infer"):
        env = _env(services[name])
        assert env.get("LINEINSPECT_METRICS_PORT") == str(WORKER_METRICS_PORT), name


def test_image_store_shared_between_infer_and_api(services: dict[str, Any],
                                                  compose: dict[str, Any]) -> None:
    def store(name: str) -> tuple[str, str]:
        env = _env(services[name])
        target = env.get("LINEINSPECT_IMAGE_STORE_DIR") or env["LINEINSPECT_DATA_DIR"] + "/images"
        mounts = [(src, tgt) for src, tgt in _volumes(services[name])
                  if target == tgt or target.startswith(tgt.rstrip("/") + "/")]
        assert mounts, f"{name}: no volume holds the image store {target}"
        return mounts[0][0], target

    src_infer, dir_infer = store("infer")
    src_api, dir_api = store("api")
    assert src_infer == src_api and dir_infer == dir_api
    assert src_infer in (compose.get("volumes") or {}), "the image store is a named volume"


def test_depends_on_conditions(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for dep, condition in _depends(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert condition in {"service_started", "service_healthy",
                                 "service_completed_successfully"}
            if condition == "service_healthy":
                assert "test" in (services[dep].get("healthcheck") or {}), f"{dep}: healthcheck"
    assert _depends(services["migrate"]) == {"postgres": "service_healthy"}
    for name in ("infer", "api"):
        deps = _depends(services[name])
        assert deps.get("redis") == "service_healthy", name
        assert deps.get("migrate") == "service_completed_successfully", name
    assert _depends(services["acquire"]).get("redis") == "service_healthy"
    assert services["migrate"].get("restart", "no") == "no", "migrate is a one-shot"


def test_redis_and_postgres(services: dict[str, Any], compose: dict[str, Any]) -> None:
    redis = services["redis"]
    assert redis["image"].split(":")[1].startswith("7")
    cmd = " ".join(_command(redis))
    assert re.search(r"--appendonly\s+yes", cmd)
    assert any(tgt == "/data" for _, tgt in _volumes(redis))

    pg = services["postgres"]
    assert pg["image"].split(":")[1].startswith("16")
    assert any(tgt == "/var/lib/postgresql/data" for _, tgt in _volumes(pg))
    assert "test" in pg["healthcheck"]
    url = urlsplit(REQUIRED_ENV["LINEINSPECT_DATABASE_URL"])
    env = _env(pg)
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        url.username, url.password, url.path.lstrip("/"))
    for name in ("redis", "postgres"):
        for src, _ in _volumes(services[name]):
            assert src in compose["volumes"], f"{name}: persistent named volume"


def test_bind_mounts_exist(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for src, _ in _volumes(svc):
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name}: {src} is missing"


def test_prometheus_and_grafana_services(services: dict[str, Any]) -> None:
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus")
    mounts = dict((tgt, src) for src, tgt in _volumes(prom))
    config_flag = next(a for a in _command(prom) if a.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    mount_dir = next(t for t in mounts if config_path.startswith(t.rstrip("/") + "/"))
    host = ROOT / mounts[mount_dir].replace(":ro", "") / config_path[len(mount_dir):].lstrip("/")
    assert host.resolve() == PROM_CONFIG

    graf = services["grafana"]
    assert graf["image"].startswith("grafana/grafana")
    env = _env(graf)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    gmounts = {(ROOT / src).resolve(): tgt for src, tgt in _volumes(graf) if src.startswith(".")}
    assert gmounts[(GRAFANA_DIR / "provisioning").resolve()] == "/etc/grafana/provisioning"
    provider = _load_yaml(DASHBOARD_PROVIDER)["providers"][0]
    assert gmounts[(GRAFANA_DIR / "dashboards").resolve()] == provider["options"]["path"]


def _compose_v1_copy(tmp_path: Path) -> Path:
    """docker-compose.yml without its top-level ``name`` - the one Compose-spec key the
    Python client (v1, Debian's ``docker-compose``) predates - for that client to validate."""
    lines = COMPOSE_FILE.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith("name:")]
    assert len(lines) - len(kept) == 1, "only the top-level name is left out"
    copy = tmp_path / "docker-compose.yml"
    copy.write_text("".join(kept))
    return copy


def test_docker_compose_config(tmp_path: Path) -> None:
    """A real compose client validates the file (no engine needed): ``docker compose
    config`` (the v2 plugin) where it exists, else ``docker-compose config`` (v1, which
    ``make test`` installs with apt: Debian 12 has no v2 package) on the file less its
    top-level ``name``. A typo'd service key fails either of them."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"],
                                 capture_output=True).returncode == 0:
        cmd, compose_file = [docker, "compose"], COMPOSE_FILE
    elif (v1 := shutil.which("docker-compose")) is not None:
        cmd, compose_file = [v1], _compose_v1_copy(tmp_path)
    else:
        missing("no compose client (make test installs docker-compose)")

    def config(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, "-f", str(path), "--project-directory", str(ROOT),
                               "config", "--quiet"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    res = config(compose_file)
    assert res.returncode == 0, res.stdout + res.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(compose_file.read_text().replace(
        '    command: ["infer"]\n', '    command: ["infer"]\n    replicaz: 2\n', 1))
    assert "replicaz" in broken.read_text()
    bad = config(broken)
    assert bad.returncode != 0 and "replicaz" in bad.stdout + bad.stderr



# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def _pip_installs(commands: str) -> set[str]:
    """Normalized ``pip install`` invocations (quiet flags dropped) in a shell text."""
    out = set()
    for m in re.finditer(r"pip install ([^&;\n]+)", commands):
        args = [a for a in shlex.split(m.group(1)) if a not in ("--quiet", "-q")]
        out.add(" ".join(args))
    return out


def test_dockerfile_base_user_entrypoint_healthcheck() -> None:
    ins = _dockerfile_instructions()
    froms = [a for op, a in ins if op == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"
    users = [a for op, a in ins if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as non-root"
    entry = [a for op, a in ins if op == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["lineinspect"]
    health = [a for op, a in ins if op == "HEALTHCHECK"]
    assert health and "/healthz" in health[-1]
    copies = [a.split() for op, a in ins if op == "COPY"]
    assert any(c[0] == "." for c in copies), "copies the repository"


def test_dockerfile_runs_the_makefile_runtime_install() -> None:
    runs = " && ".join(a for op, a in _dockerfile_instructions() if op == "RUN")
    assert re.search(r"python3?(\.11)? -m venv /app/\.venv", runs)
    docker_pips = _pip_installs(runs)

    make = MAKEFILE.read_text(encoding="utf-8")
    # The runtime install of `make run`: the $(BIN)/python and $(STAMP) targets.
    venv_rule = re.search(r"^\$\(BIN\)/python:.*?(?=^\S)", make, re.S | re.M).group(0)
    stamp_rule = re.search(r"^\$\(STAMP\):.*?(?=^\S)", make, re.S | re.M).group(0)
    assert "-m venv" in venv_rule
    make_pips = _pip_installs(venv_rule + "\n" + stamp_rule)
    assert make_pips == {"--upgrade pip", "-e ."}, make_pips  # what the Makefile does today
    assert make_pips <= docker_pips, f"Dockerfile pip steps {docker_pips} != Makefile {make_pips}"


def test_dockerfile_does_not_install_torch() -> None:
    for op, args in _dockerfile_instructions():
        if op == "RUN":
            assert "torch" not in args, args
            assert not re.search(r"-e\s+['\"]?\.\[", args), f"no extras in the image: {args}"


def test_dockerignore() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if p.strip() and not p.strip().startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = False
        for pat in patterns:
            negate = pat.startswith("!")
            pat = pat.lstrip("!").strip("/")
            pats = {pat, pat[3:]} if pat.startswith("**/") else {pat}
            if any(fnmatch.fnmatchcase(p, q) for p in prefixes for q in pats):
                hit = not negate
        return hit

    for path in (".venv/bin/python", "var/lineinspect.db", "runs/x/last.pt", ".git/HEAD"):
        assert ignored(path), f"{path} should not be in the build context"
    for path in ("pyproject.toml", "models/zoo/mm.onnx", "models/zoo/mm.md",
                 "deploy/recipes/steel-strip.yaml", "deploy/demo/frames/0001.png",
                 "deploy/cli.py", "acquisition/__init__.py", "README.md"):
        assert not ignored(path), f"{path} is needed in the image"


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_api_and_workers(prom_config: dict[str, Any],
                                            services: dict[str, Any]) -> None:
    static: set[str] = set()
    dns: list[dict[str, Any]] = []
    for job in prom_config["scrape_configs"]:
        for sc in job.get("static_configs") or []:
            static.update(sc["targets"])
        dns.extend(job.get("dns_sd_configs") or [])
        assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "api:8000" in static
    assert f"acquire:{WORKER_METRICS_PORT}" in static
    infer_sd = [d for d in dns if {"infer", "tasks.infer"} & set(d["names"])]
    assert infer_sd, "the scaled infer service is discovered through DNS"
    assert all(d.get("type", "SRV") == "A" and d["port"] == WORKER_METRICS_PORT
               for d in infer_sd)
    for target in static:
        host = target.split(":")[0]
        assert host in services or host == "localhost", f"{target}: no such compose service"


def test_prometheus_rule_files_exist(prom_config: dict[str, Any]) -> None:
    files = [PROM_DIR / f for f in prom_config["rule_files"]]
    assert ALERTS in [f.resolve() for f in files]
    assert all(f.is_file() for f in files)


def test_alert_rules_well_formed(alert_rules: list[dict[str, Any]]) -> None:
    names = [r["alert"] for r in alert_rules]
    assert len(names) == len(set(names)), "alert names are unique"
    for r in alert_rules:
        assert r["expr"].strip()
        assert r["labels"]["severity"] in {"critical", "warning", "info"}
        assert r["annotations"]["summary"]


def test_alert_rules_cover_the_brief(alert_rules: list[dict[str, Any]]) -> None:
    def rule_on(metric: str) -> dict[str, Any]:
        hits = [r for r in alert_rules if re.search(rf"\b{metric}\b", r["expr"])]
        assert hits, f"no alert on {metric}"
        return hits[0]

    camera = rule_on("lineinspect_camera_connected")
    assert camera["for"] == "10s" and "== 0" in camera["expr"]
    assert "> 0" in rule_on("lineinspect_frames_dropped_total")["expr"]
    assert "> 0" in rule_on("lineinspect_frames_incomplete_total")["expr"]
    p99 = rule_on("lineinspect_grab_to_verdict_seconds_bucket")
    assert "0.99" in p99["expr"] and "> 0.1" in p99["expr"] and p99["for"] == "5m"
    assert "> 30" in rule_on("lineinspect_stream_lag_frames")["expr"]
    drift = rule_on("lineinspect_frame_brightness")["expr"]
    assert "[5m]" in drift and "[1h]" in drift and "abs(" in drift and "> 15" in drift
    assert "[1m]" in rule_on("lineinspect_verdicts_total")["expr"]


def test_alert_metrics_are_exported(alert_rules: list[dict[str, Any]],
                                    exported_metrics: set[str]) -> None:
    used = {m for r in alert_rules for m in METRIC_NAME.findall(r["expr"])}
    assert used
    assert used <= exported_metrics, f"not exported: {sorted(used - exported_metrics)}"


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        missing("promtool not installed (make test installs it: apt-get install prometheus)")
    return tool


def test_promtool_check_config() -> None:
    res = subprocess.run([_promtool(), "check", "config", str(PROM_CONFIG)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_alert_unit_tests() -> None:
    """deploy/prometheus/alerts_test.yml: each alert fires (and only) when it should."""
    res = subprocess.run([_promtool(), "test", "rules", ALERTS_TEST.name], cwd=PROM_DIR,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_parses_dashboard_queries(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL (checked as a recording rule)."""
    tool = _promtool()
    exprs = [e for p in _all_panels(dashboard["panels"]) for e in _exprs(p)]
    rules = [{"record": f"dashboard:query{i}", "expr": e.replace("$line", ".*")}
             for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    res = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- Grafana


def test_grafana_datasource() -> None:
    ds = _load_yaml(DATASOURCE)["datasources"]
    prom = [d for d in ds if d["uid"] == "prometheus"]
    assert len(prom) == 1 and prom[0]["type"] == "prometheus"
    url = urlsplit(prom[0]["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)


def test_grafana_dashboard_provider() -> None:
    providers = _load_yaml(DASHBOARD_PROVIDER)["providers"]
    assert providers and providers[0]["type"] == "file"


def test_dashboard_datasource_everywhere(dashboard: dict[str, Any]) -> None:
    panels = _all_panels(dashboard["panels"])
    assert panels
    for p in panels:
        if p.get("type") == "row":
            continue
        assert p["datasource"]["uid"] == "prometheus", p["title"]
        assert p.get("targets"), p["title"]
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"])["uid"] == "prometheus", p["title"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "prometheus"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def test_dashboard_metrics_are_exported(dashboard: dict[str, Any],
                                        exported_metrics: set[str]) -> None:
    used = set(METRIC_NAME.findall(DASHBOARD.read_text(encoding="utf-8")))
    assert used
    assert used <= exported_metrics, f"not exported: {sorted(used - exported_metrics)}"


def test_dashboard_line_variable_filters_line_metrics(dashboard: dict[str, Any],
                                                      line_labelled_metrics: set[str]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "line" in variables
    for p in _all_panels(dashboard["panels"]):
        for expr in _exprs(p):
            for metric in METRIC_NAME.findall(expr):
                base = re.sub(r"_(total|bucket|sum|count|created)$", "", metric)
                if base in line_labelled_metrics or metric in line_labelled_metrics:
                    selector = re.search(rf"{metric}\{{([^}}]*)\}}", expr)
                    assert selector and '$line' in selector.group(1), f"{p['title']}: {expr}"


def test_dashboard_panels(dashboard: dict[str, Any]) -> None:
    panels = [p for p in _all_panels(dashboard["panels"]) if p.get("type") != "row"]
    queries = [(p, e) for p in panels for e in _exprs(p)]

    def panels_with(pattern: str) -> list[dict[str, Any]]:
        hits = [p for p, e in queries if re.search(pattern, e)]
        assert hits, f"no panel queries {pattern}"
        return hits

    panels_with(r"rate\(lineinspect_frames_total\{[^}]*\}\[1m\]\)")
    panels_with(r"by \(verdict\) \(\w+\(lineinspect_verdicts_total")
    panels_with(r"by \(class\) \(\w+\(lineinspect_defects_total")
    panels_with(r"histogram_quantile\(0\.5, .*lineinspect_grab_to_verdict_seconds_bucket")
    panels_with(r"histogram_quantile\(0\.99, .*lineinspect_grab_to_verdict_seconds_bucket")
    panels_with(r"histogram_quantile\(0\.99, sum by \((model, le|le, model)\) "
                r"\(rate\(lineinspect_model_inference_seconds_bucket")
    panels_with(r"lineinspect_frames_dropped_total")
    panels_with(r"lineinspect_frames_incomplete_total")
    panels_with(r"lineinspect_frame_brightness")
    panels_with(r"lineinspect_stream_lag_frames")

    camera = [p for p in panels_with(r"lineinspect_camera_connected") if p["type"] == "stat"]
    assert camera, "camera connected is a stat panel"
    steps = camera[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0]["color"] == "red" and steps[-1] == {"color": "green", "value": 1}
