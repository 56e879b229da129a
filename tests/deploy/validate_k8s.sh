#!/usr/bin/env bash
# ctest deploy_k8s: offline validation of the deployment files (deploy/Containerfile,
# deploy/entrypoint.sh, deploy/k8s/; docs/DEPLOY.md says what is and is not checked).
#   usage: tests/deploy/validate_k8s.sh [REPO_ROOT]     (default: the current directory)
#   exit:  0 all checks passed, 1 a check failed, 77 skipped (no kubectl, or no python3-yaml)
#   env:   KUBECTL                  the kubectl to use (default: kubectl on PATH)
#          LLMFORGE_K8S_DRY_RUN=1   also run `kubectl apply --dry-run=client -k deploy/k8s`
#                                   against the cluster of the current kubeconfig (needs a
#                                   reachable API server; off by default: tests stay offline)
#          LLMFORGE_K8S_MODELS_DIR  the kubernetes/client/models folder of the Python Kubernetes
#                                   client (default: found from python3's `kubernetes` package,
#                                   Debian's python3-kubernetes) for the field-level schema check
#
# What runs:
#  1. `kubectl kustomize deploy/k8s`: renders the kustomization offline; every listed file must
#     exist and parse as Kubernetes objects (apiVersion, kind, metadata.name).
#  2. Structural checks in Python (python3-yaml) on the rendered objects, the adapter rule, the
#     Containerfile and the entrypoint (see check() calls below).
#  3. Field-level schema check (unknown fields, wrong types, missing required fields) against the
#     API models of the Python Kubernetes client, only when that package is installed.
# Not run offline: `kubectl apply --dry-run=client` needs an API server for discovery even with
# --validate=false (it fails with "unable to recognize ...: connection refused"); see
# LLMFORGE_K8S_DRY_RUN above.
set -euo pipefail
root=${1:-.}
cd "$root"
k8s=deploy/k8s
for f in "$k8s/kustomization.yaml" deploy/Containerfile deploy/entrypoint.sh; do
    [[ -f $f ]] || { echo "validate_k8s: FAIL $f not found (run from the repository root or pass it)"; exit 1; }
done

kubectl=${KUBECTL:-kubectl}
if ! command -v "$kubectl" >/dev/null 2>&1; then
    echo "validate_k8s: SKIP: $kubectl not found (Debian: apt-get install kubernetes-client)"
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Render offline.
if ! "$kubectl" kustomize "$k8s" > "$tmp/rendered.yaml" 2> "$tmp/kustomize.err"; then
    echo "validate_k8s: FAIL kubectl kustomize $k8s:"
    cat "$tmp/kustomize.err"
    exit 1
fi
echo "ok: kubectl kustomize $k8s (kubectl $("$kubectl" version --client 2>/dev/null | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+[^ ",]*' | head -1)) rendered $(grep -c '^kind:' "$tmp/rendered.yaml") objects"

# Optional: the real thing, against a cluster.
if [[ ${LLMFORGE_K8S_DRY_RUN:-0} == 1 ]]; then
    if "$kubectl" apply --dry-run=client -k "$k8s" < /dev/null; then
        echo "ok: kubectl apply --dry-run=client -k $k8s"
    else
        echo "validate_k8s: FAIL kubectl apply --dry-run=client -k $k8s"
        exit 1
    fi
else
    echo "not run: kubectl apply --dry-run=client (needs an API server; LLMFORGE_K8S_DRY_RUN=1 runs it against the current kubeconfig)"
fi

# 2 + 3. Python with PyYAML: Debian's python3 first (its python3-yaml and python3-kubernetes), else the one on PATH.
py=""
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then py=$p; break; fi
done
if [[ -z $py ]]; then
    echo "validate_k8s: SKIP: the structural checks need python3 with PyYAML (Debian: python3-yaml); only the kustomize render ran"
    exit 77
fi

"$py" - "$tmp/rendered.yaml" "$k8s/prometheus-adapter-rules.yaml" deploy/Containerfile deploy/entrypoint.sh <<'PY'
import ast, importlib.util, os, re, sys
import yaml

rendered_path, adapter_path, containerfile_path, entrypoint_path = sys.argv[1:5]
failures = []

def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)
    return cond

def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

def quantity(q):
    """A Kubernetes quantity as a float (cores or bytes); None when it does not parse."""
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(q))
    if not m:
        return None
    scale = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[m.group(2)]
    return float(m.group(1)) * scale

docs = load_all(rendered_path)
KNOWN = {("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
         ("v1", "PersistentVolumeClaim"), ("v1", "ConfigMap"),
         ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget")}
for d in docs:
    name = (d.get("metadata") or {}).get("name")
    check(bool(name), f"{d.get('kind')} has metadata.name")
    check((d.get("apiVersion"), d.get("kind")) in KNOWN,
          f"{d.get('kind')}/{name}: apiVersion {d.get('apiVersion')} kind {d.get('kind')} is a known built-in type")
    check("namespace" not in (d.get("metadata") or {}), f"{d.get('kind')}/{name} is namespace-less")

by_kind = {}
for d in docs:
    by_kind.setdefault(d.get("kind"), []).append(d)
workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
services = by_kind.get("Service", [])
hpas = by_kind.get("HorizontalPodAutoscaler", [])
pvcs = {d["metadata"]["name"]: d for d in by_kind.get("PersistentVolumeClaim", [])}
check(len(workloads) >= 1, "there is a Deployment or StatefulSet")
check(len(hpas) >= 1, "there is a HorizontalPodAutoscaler")
check(len(services) >= 1, "there is a Service")

def probe_ok(c, kind, ports):
    p = c.get(kind) or {}
    get = p.get("httpGet") or {}
    port = get.get("port")
    return get.get("path") == "/health" and (port in ports)

for w in workloads:
    wname = f"{w['kind']}/{w['metadata']['name']}"
    spec = w.get("spec") or {}
    tmpl = spec.get("template") or {}
    pod = tmpl.get("spec") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    check(match and all(labels.get(k) == v for k, v in match.items()),
          f"{wname}: selector.matchLabels {match} select the pod template's labels")
    claim_templates = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    containers = pod.get("containers") or []
    check(len(containers) >= 1, f"{wname} has containers")
    for c in containers:
        cname = f"{wname} container {c.get('name')}"
        ports = set()
        for p in c.get("ports") or []:
            ports.add(p.get("containerPort"))
            if p.get("name"):
                ports.add(p["name"])
        check(8080 in ports, f"{cname} declares containerPort 8080")
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            check(probe_ok(c, kind, ports), f"{cname}: {kind} is an httpGet on /health at a declared port")
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        for r in ("cpu", "memory"):
            check(quantity(lim.get(r)) is not None, f"{cname}: resources.limits.{r} set ({lim.get(r)})")
            check(quantity(req.get(r)) is not None, f"{cname}: resources.requests.{r} set ({req.get(r)})")
            if quantity(lim.get(r)) is not None and quantity(req.get(r)) is not None:
                check(quantity(req[r]) <= quantity(lim[r]), f"{cname}: requests.{r} <= limits.{r}")
        args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        def flag(name, default=None):
            for i, a in enumerate(args):
                if a == name and i + 1 < len(args):
                    return args[i + 1]
                if a.startswith(name + "="):
                    return a.split("=", 1)[1]
            return default
        data_mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/data"]
        check(len(data_mounts) == 1 and not data_mounts[0].get("readOnly"),
              f"{cname}: a writable volume is mounted at /data")
        if data_mounts:
            vname = data_mounts[0]["name"]
            if vname in claim_templates:
                modes = (claim_templates[vname].get("spec") or {}).get("accessModes") or []
                check(w["kind"] == "StatefulSet", f"{cname}: /data comes from volumeClaimTemplate {vname} (one claim per pod)")
            else:
                v = volumes.get(vname) or {}
                claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
                check(claim is not None, f"{cname}: /data volume {vname} is a PersistentVolumeClaim (not {sorted(set(v) - {'name'})})")
                modes = ((pvcs.get(claim) or {}).get("spec") or {}).get("accessModes") or []
                if claim is not None and claim not in pvcs:
                    check(False, f"{cname}: claim {claim} is defined in the manifests")
                # One RWO claim shared by a scaled Deployment: a second pod on another node cannot
                # attach it, and SQLite must not be shared anyway.
                scaled = (spec.get("replicas", 1) or 1) > 1 or any(
                    (h["spec"].get("scaleTargetRef") or {}).get("name") == w["metadata"]["name"] for h in hpas)
                check(not scaled, f"{cname}: a single claim for /data is not shared by several replicas (use a StatefulSet)")
            check(bool(modes) and set(modes) <= {"ReadWriteOnce", "ReadWriteOncePod"},
                  f"{cname}: the /data claim is ReadWriteOnce(Pod) (SQLite needs a local, unshared filesystem): {modes}")
        if args:
            check(flag("--port", "8080") == "8080", f"{cname}: the server listens on port 8080 (--port {flag('--port', '8080')})")
            check(flag("--host") == "0.0.0.0", f"{cname}: the server binds 0.0.0.0 (--host {flag('--host')})")
            db = flag("--db") or ""
            check(db.startswith("/data/"), f"{cname}: --db is on the /data volume ({db})")
            grace = float(flag("--shutdown-grace", "30"))
            pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
            pre_s = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0.0
            tgps = pod.get("terminationGracePeriodSeconds", 30)
            check(tgps > grace + pre_s,
                  f"{cname}: terminationGracePeriodSeconds {tgps} > preStop {pre_s:g} s + --shutdown-grace {grace:g} s")
    if w["kind"] == "StatefulSet":
        gov = [s for s in services if s["metadata"]["name"] == spec.get("serviceName")]
        check(len(gov) == 1 and (gov[0].get("spec") or {}).get("clusterIP") == "None",
              f"{wname}: serviceName {spec.get('serviceName')} is a headless Service in the manifests")

for s in services:
    sel = (s.get("spec") or {}).get("selector") or {}
    targets = [w for w in workloads
               if sel and all(((w["spec"]["template"].get("metadata") or {}).get("labels") or {}).get(k) == v
                              for k, v in sel.items())]
    check(len(targets) >= 1, f"Service/{s['metadata']['name']}: selector {sel} matches a workload's pods")
    for p in (s.get("spec") or {}).get("ports") or []:
        tp = p.get("targetPort", p.get("port"))
        ok = any(tp in {q.get("containerPort") for c in w["spec"]["template"]["spec"]["containers"] for q in c.get("ports") or []}
                 | {q.get("name") for c in w["spec"]["template"]["spec"]["containers"] for q in c.get("ports") or []}
                 for w in targets)
        check(ok, f"Service/{s['metadata']['name']}: targetPort {tp} is a container port")

for h in hpas:
    hname = f"HorizontalPodAutoscaler/{h['metadata']['name']}"
    spec = h.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    check(any(w["kind"] == ref.get("kind") and w["metadata"]["name"] == ref.get("name")
              and w["apiVersion"] == ref.get("apiVersion") for w in workloads),
          f"{hname}: scaleTargetRef {ref.get('apiVersion')} {ref.get('kind')}/{ref.get('name')} is a workload in the manifests")
    pods_metrics = [m for m in spec.get("metrics") or [] if m.get("type") == "Pods"]
    check(any(((m.get("pods") or {}).get("metric") or {}).get("name") == "llmforge_queue_depth" for m in pods_metrics),
          f"{hname}: scales on the Pods metric llmforge_queue_depth")
    check(1 <= spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0),
          f"{hname}: 1 <= minReplicas <= maxReplicas ({spec.get('minReplicas', 1)}..{spec.get('maxReplicas')})")

# The prometheus-adapter rule the HPA depends on (not part of the kustomization: other namespace).
adapter_docs = load_all(adapter_path) if os.path.exists(adapter_path) else []
rules = []
for d in adapter_docs:
    for v in (d.get("data") or {}).values():
        rules += (yaml.safe_load(v) or {}).get("rules") or []
check(any("llmforge_queue_depth" in r.get("seriesQuery", "")
          and (((r.get("resources") or {}).get("overrides") or {}).get("pod") or {}).get("resource") == "pod"
          and "<<.LabelMatchers>>" in r.get("metricsQuery", "")
          for r in rules),
      f"{adapter_path}: a prometheus-adapter rule serves llmforge_queue_depth per pod")

# The Containerfile and its entrypoint.
cf = open(containerfile_path).read()
lines = [l.strip() for l in re.sub(r"\\\n", " ", cf).splitlines() if l.strip() and not l.strip().startswith("#")]
def instr(name):
    return [l for l in lines if l.split(None, 1)[0].upper() == name]
check(any(re.fullmatch(r"EXPOSE\s+8080(/tcp)?", l) for l in instr("EXPOSE")), "Containerfile: EXPOSE 8080")
ep = open(entrypoint_path).read()
hc_cmds = [l.split("CMD", 1)[1] for l in instr("HEALTHCHECK") if "CMD" in l]
check(any("/health" in c or ("healthcheck" in c and "GET /health" in ep) for c in hc_cmds),
      "Containerfile: HEALTHCHECK runs GET /health (directly or through the entrypoint's healthcheck mode)")
froms = instr("FROM")
check(len(froms) >= 2 and froms[-1].split()[1].startswith("debian:12-slim"),
      f"Containerfile: multi-stage, runtime stage from debian:12-slim ({[f.split()[1] for f in froms]})")
users = instr("USER")
check(bool(users) and users[-1].split()[1].split(":")[0] not in ("0", "root"), "Containerfile: runs as a non-root USER")
check(any("/data" in l for l in instr("VOLUME")), "Containerfile: VOLUME /data")
check(any("entrypoint" in l for l in instr("ENTRYPOINT")), "Containerfile: ENTRYPOINT is the entrypoint script")
check(re.search(r'^\s*exec "\$bin" "\$@"', ep, re.M) is not None and "shop init" in ep,
      "entrypoint.sh: inits the database when missing, then execs the server (SIGTERM reaches it)")

# 3. Field-level schema check against the Python Kubernetes client's API models.
models_dir = os.environ.get("LLMFORGE_K8S_MODELS_DIR")
if not models_dir:
    spec = importlib.util.find_spec("kubernetes")  # locates the package without importing it
    if spec and spec.submodule_search_locations:
        models_dir = os.path.join(list(spec.submodule_search_locations)[0], "client", "models")
if not models_dir or not os.path.isdir(models_dir):
    print("not run: field-level schema check (needs the Python Kubernetes client: Debian's python3-kubernetes)")
else:
    init = open(os.path.join(models_dir, "__init__.py")).read()
    module_of = dict((cls, mod) for mod, cls in re.findall(r"from kubernetes\.client\.models\.(\w+) import (\w+)", init))
    version = re.search(r"The version of the OpenAPI document: (\S+)", open(os.path.join(models_dir, module_of["V1Pod"] + ".py")).read())
    cache = {}
    def model(cls):
        if cls not in cache:
            src = open(os.path.join(models_dir, module_of[cls] + ".py")).read()
            tree = ast.parse(src)
            body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
            attrs = {t.targets[0].id: ast.literal_eval(t.value) for t in body
                     if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name)
                     and t.targets[0].id in ("openapi_types", "attribute_map")}
            types = {attrs["attribute_map"][k]: v for k, v in attrs["openapi_types"].items()}
            required = {attrs["attribute_map"][k] for k in re.findall(r"Invalid value for `(\w+)`, must not be `None`", src)
                        if k in attrs["attribute_map"]}
            cache[cls] = (types, required)
        return cache[cls]
    errors = []
    QUANTITY_MAPS = {"limits", "requests", "capacity", "hard"}
    def walk(v, t, path):
        if v is None or t == "object":
            return
        if t.startswith("list["):
            if not isinstance(v, list):
                return errors.append(f"{path}: expected a list")
            for i, e in enumerate(v):
                walk(e, t[5:-1], f"{path}[{i}]")
        elif t.startswith("dict("):
            if not isinstance(v, dict):
                return errors.append(f"{path}: expected a map")
            vt = t[t.index(",") + 1:-1].strip()
            for k, e in v.items():
                if vt == "str" and path.rsplit(".", 1)[-1] in QUANTITY_MAPS and isinstance(e, (int, float)):
                    continue  # quantities may be written as numbers
                walk(e, vt, f"{path}.{k}")
        elif t in ("str", "datetime", "date"):
            if not isinstance(v, str):
                errors.append(f"{path}: expected a string, got {type(v).__name__} {v!r}")
        elif t == "int":
            if not isinstance(v, int) or isinstance(v, bool):
                errors.append(f"{path}: expected an integer, got {v!r}")
        elif t == "float":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                errors.append(f"{path}: expected a number, got {v!r}")
        elif t == "bool":
            if not isinstance(v, bool):
                errors.append(f"{path}: expected true/false, got {v!r}")
        elif t in module_of:
            if not isinstance(v, dict):
                return errors.append(f"{path}: expected an object ({t})")
            types, required = model(t)
            for k, e in v.items():
                if k not in types:
                    errors.append(f"{path}.{k}: unknown field (not in {t})")
                else:
                    walk(e, types[k], f"{path}.{k}")
            for r in sorted(required - set(v)):
                errors.append(f"{path}.{r}: required field missing ({t})")
        else:
            errors.append(f"{path}: type {t} unknown to the checker")
    CLASS = {("apps/v1", "Deployment"): "V1Deployment", ("apps/v1", "StatefulSet"): "V1StatefulSet",
             ("v1", "Service"): "V1Service", ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
             ("v1", "ConfigMap"): "V1ConfigMap", ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
             ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler"}
    notes = []
    if "V2HorizontalPodAutoscaler" not in module_of and "V2beta2HorizontalPodAutoscaler" in module_of:
        # Clients older than Kubernetes 1.23 lack autoscaling/v2; v2beta2 has the same fields.
        CLASS[("autoscaling/v2", "HorizontalPodAutoscaler")] = "V2beta2HorizontalPodAutoscaler"
        notes.append("autoscaling/v2 checked with the identical v2beta2 model")
    for d in docs + adapter_docs:
        cls = CLASS.get((d.get("apiVersion"), d.get("kind")))
        if cls in module_of:
            walk(d, cls, f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}")
        else:
            errors.append(f"{d.get('kind')}: no model for {d.get('apiVersion')} in {models_dir}")
    for e in errors:
        print("  schema: " + e)
    check(not errors, f"field-level schema check against the Python Kubernetes client's models "
                      f"({version.group(1) if version else models_dir}{'; ' + '; '.join(notes) if notes else ''})")

if failures:
    print(f"validate_k8s: {len(failures)} check(s) FAILED")
    sys.exit(1)
print("validate_k8s: all checks passed")
PY
