"""Offline check of a FHIR document Bundle against the IPS 2.0.0 StructureDefinition snapshots.

No offline IPS validator exists on PyPI or Debian (the HL7 validator downloads its packages), and the
`fhir.resources` models accept what IPS forbids (a section with neither entry nor emptyReason, a
MedicationStatement without effective[x]). So this module reads the snapshots of the `hl7.fhir.uv.ips`
2.0.0 package (fetched by install.sh with `npm pack` into `.deps/fhir/`, never committed) and checks:

- cardinalities (min/max) of every snapshot element under a node that is present, slices included;
- fixed[x] / pattern[x] values of the elements present;
- every invariant (`constraint[].expression`) with fhirpathpy, on each node of the element that carries it;
- that each Composition section entry resolves to a resource of the Bundle.

Each Bundle entry is checked against the IPS profile its Bundle slice names (Composition, Patient,
Condition, AllergyIntolerance, MedicationStatement, ...); resources whose slice names no IPS profile
(Device, DocumentReference, Provenance, FamilyMemberHistory) get only the fhir.resources base checks.

Slices are matched by their discriminators: `value` on a pattern (section codes) or on an extension's url,
`type` on `$this` (choice types) and on `resource` (Bundle entries). A slice that cannot be matched this
way (`profile` on `resolve()`) is checked only when it is optional, which IPS's are: it is counted as
`unchecked` otherwise, and so is an invariant fhirpathpy cannot evaluate, so nothing passes silently.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from extractor.errors import CouldNotRun
from extractor.export import terminology as T

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PACKAGE = REPO / ".deps" / "fhir" / f"{T.IPS_PACKAGE}-{T.IPS_VERSION}" / "package"
PACKAGE_ENV = "SYNTHESE_FHIR_IPS_PACKAGE"


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (resource, element id), which rule (`min`, `max`, `pattern`, a constraint key)."""

    resource: str
    element: str
    rule: str
    severity: str  # error | warning
    message: str

    def __str__(self) -> str:
        return f"{self.severity} {self.rule} at {self.element} in {self.resource}: {self.message}"


@dataclass
class CheckResult:
    """The outcome of a check: errors make the bundle fail; warnings and unchecked rules are reported."""

    violations: list[Violation] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # rules that could not be evaluated, with why
    invariants_evaluated: int = 0

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def package_dir() -> Path:
    """Where the IPS package's files are: $SYNTHESE_FHIR_IPS_PACKAGE, else .deps/fhir/ of the checkout."""
    env = os.environ.get(PACKAGE_ENV)
    return Path(env) if env else DEFAULT_PACKAGE


class Profiles:
    """The IPS StructureDefinitions by canonical URL, and the evaluator of their invariants."""

    def __init__(self, directory: Path | None = None):
        directory = directory or package_dir()
        self.directory = directory
        manifest = directory / "package.json"
        if not manifest.is_file():
            raise CouldNotRun(
                f"the FHIR IPS package {T.IPS_PACKAGE} {T.IPS_VERSION} is missing ({directory}): run ./install.sh "
                f"(it fetches it with `npm pack {T.IPS_PACKAGE}@{T.IPS_VERSION}`) or set {PACKAGE_ENV}")
        try:
            meta = json.loads(manifest.read_text())
            if (meta.get("name"), meta.get("version")) != (T.IPS_PACKAGE, T.IPS_VERSION):
                raise CouldNotRun(f"{directory} holds {meta.get('name')} {meta.get('version')}, "
                                  f"not {T.IPS_PACKAGE} {T.IPS_VERSION}: run ./install.sh")
            self.by_url: dict[str, dict] = {}
            for f in directory.glob("StructureDefinition-*.json"):
                sd = json.loads(f.read_text())
                if "snapshot" in sd:
                    self.by_url[sd["url"]] = sd
        except (OSError, ValueError) as e:
            raise CouldNotRun(f"the FHIR IPS package in {directory} cannot be read: {e}") from e
        if T.IPS_PROFILES["Bundle"] not in self.by_url:
            raise CouldNotRun(f"{directory} has no Bundle-uv-ips snapshot: run ./install.sh again")
        self._compiled: dict[str, object] = {}
        self._per_sd: dict[str, dict] = {}  # per StructureDefinition: elements by id, slice matchers
        try:  # only the export pays for it (~0.3 s with the R4 model)
            import fhirpathpy
            from fhirpathpy.engine.nodes import ResourceNode
            from fhirpathpy.models import models
        except ImportError as e:
            raise CouldNotRun(f"fhirpathpy is not installed ({e}): run ./install.sh") from e

        self._fhirpath, self._model, self._node = fhirpathpy, models["r4"], ResourceNode.create_node
        # trace() (in dom-3) would print to stdout: here it only passes its input on.
        # fhirpathpy 2.x lacks hasValue() (bdl-10: timestamp.hasValue()): a single primitive with a value.
        self._options = {"userInvocationTable": {
            "trace": {"fn": lambda inputs, *args: inputs, "arity": {1: ["String"], 2: ["String", "AnyAtRoot"]}},
            "hasValue": {"fn": lambda inputs: [len(inputs) == 1 and inputs[0] is not None
                                               and not isinstance(inputs[0], (dict, list))], "arity": {0: []}},
        }}

    # --- invariants ---------------------------------------------------------------------------------
    def _evaluate(self, expression: str, node, path: str, root: dict):
        fn = self._compiled.get(expression)
        if fn is None:
            fn = self._fhirpath.compile(expression, self._model, self._options)
            self._compiled[expression] = fn
        # The node is typed by its element path, so children(), is() and as() know what it is.
        return fn(self._node(node, path), {"resource": root, "rootResource": root})

    # --- the check ----------------------------------------------------------------------------------
    def check_bundle(self, bundle: dict) -> CheckResult:
        """Check a document Bundle (FHIR JSON) and each entry against the IPS profile of its slice."""
        result = CheckResult()
        bundle_sd = self.by_url[T.IPS_PROFILES["Bundle"]]
        _Walker(self, bundle_sd, bundle, "Bundle", result).run()
        profiles_of = _entry_profiles(bundle_sd)
        known = set()  # what a reference may name: fullUrl, and Type/id
        for i, entry in enumerate(bundle.get("entry") or []):
            res = entry.get("resource") or {}
            rtype = res.get("resourceType")
            known.add(entry.get("fullUrl"))
            if res.get("id"):
                known.add(f"{rtype}/{res['id']}")
            candidates = profiles_of.get(rtype, [])
            # A type sliced under several profiles (Observation) is checked against the one it claims.
            claimed = [u for u in candidates if u in (res.get("meta") or {}).get("profile", [])]
            url = candidates[0] if len(candidates) == 1 else (claimed[0] if claimed else None)
            if url is None and candidates:
                result.unchecked.append(f"entry[{i}] {rtype}: claims none of its IPS profiles")
                continue
            sd = self.by_url.get(url) if url else None
            if url and sd is None:
                result.unchecked.append(f"entry[{i}] {rtype}: profile {url} not in the package")
            if sd:
                _Walker(self, sd, res, f"entry[{i}] {rtype}", result).run()
        for i, entry in enumerate(bundle.get("entry") or []):
            res = entry.get("resource") or {}
            if res.get("resourceType") != "Composition":
                continue
            for sec in res.get("section") or []:
                for ref in sec.get("entry") or []:
                    if ref.get("reference") not in known:
                        result.violations.append(Violation(
                            f"entry[{i}] Composition", "Composition.section.entry", "reference", "error",
                            f"{ref.get('reference')} is not an entry of the Bundle"))
        return result


def _entry_profiles(bundle_sd: dict) -> dict[str, list[str]]:
    """resourceType -> the IPS profiles named by the Bundle's entry slices for that type."""
    out: dict[str, list[str]] = {}
    for el in bundle_sd["snapshot"]["element"]:
        if el["id"].startswith("Bundle.entry:") and el["id"].endswith(".resource"):
            for t in el.get("type") or []:
                for url in t.get("profile") or []:
                    out.setdefault(t["code"], []).append(url)
    return out


def _segments(element_id: str) -> list[str]:
    return element_id.split(".")


def _children(node: dict, name: str) -> list[tuple[str, object]]:
    """The (key, value) children of `node` for the element name (choice types `x[x]` and `_x` extensions)."""
    if not isinstance(node, dict):
        return []
    if name.endswith("[x]"):
        prefix = name[:-3]
        keys = [k for k in node if (k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper())
                or (k.startswith("_" + prefix) and len(k) > len(prefix) + 1 and k[len(prefix) + 1].isupper())]
    else:
        keys = [k for k in (name, "_" + name) if k in node]
    out: list[tuple[str, object]] = []
    for k in keys:
        plain = k.lstrip("_")
        v = node[k]
        items = v if isinstance(v, list) else [v]
        if k.startswith("_") and plain in node:
            continue  # a value with its extension counts once
        out.extend((plain, x) for x in items if x is not None)
    return out


def _has_content(v) -> bool:
    if isinstance(v, dict):
        return any(k != "id" and _has_content(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_content(x) for x in v)
    return v is not None and v != ""


def _type_path(path: str, key: str) -> str:
    """The FHIRPath type path of a node: `MedicationStatement.effective[x]` read as `effectivePeriod`
    is `MedicationStatement.effective` (how fhirpathpy's R4 model names choice elements)."""
    return path[:-3] if path.endswith("[x]") else path


def _matches(value, pattern) -> bool:
    """FHIR pattern semantics: every part of the pattern is found in the value (lists: each item somewhere)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and _matches(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        return all(any(_matches(v, p) for v in values) for p in pattern)
    return value == pattern


class _Walker:
    """One resource against one StructureDefinition snapshot."""

    def __init__(self, profiles: Profiles, sd: dict, resource: dict, label: str, result: CheckResult):
        self.p, self.sd, self.root, self.label, self.result = profiles, sd, resource, label, result
        cache = profiles._per_sd.setdefault(sd["url"], {"elements": None, "matchers": {}})
        if cache["elements"] is None:
            cache["elements"] = {e["id"]: e for e in sd["snapshot"]["element"]}
        self.elements, self.matchers = cache["elements"], cache["matchers"]

    def fail(self, element: str, rule: str, message: str, severity: str = "error") -> None:
        self.result.violations.append(Violation(self.label, element, rule, severity, message))

    def run(self) -> None:
        nodes: dict[str, list[tuple[int, str, object]]] = {}  # element id -> (parent index, key, value)
        for el in self.sd["snapshot"]["element"]:
            eid = el["id"]
            segs = _segments(eid)
            if len(segs) == 1:
                nodes[eid] = [(0, segs[0], self.root)]
                self.constraints(el, nodes[eid])
                continue
            parent_id = ".".join(segs[:-1])
            if parent_id not in nodes:
                continue  # under a contentReference or an element type the snapshot does not expand
            last = segs[-1]
            name, _, slice_name = last.partition(":")
            parents = nodes[parent_id]
            if not parents:
                nodes[eid] = []  # nothing there: no count to check, no node to test
                continue
            if slice_name:
                base = nodes.get(".".join(segs[:-1] + [name])) or []
                if eid not in self.matchers:
                    self.matchers[eid] = self.slice_matcher(eid, el, name, slice_name)
                matcher = self.matchers[eid]
                if matcher is None:
                    if el.get("min", 0) > 0:
                        self.result.unchecked.append(f"{self.label}: slice {eid} (its discriminator is not supported)")
                    continue
                found = [(pi, k, v) for (pi, k, v) in base if matcher(k, v)]
            else:
                found = [(i, k, v) for i, (_, _, pv) in enumerate(parents) for k, v in _children(pv, name)]
            nodes[eid] = found
            self.cardinality(el, eid, parents, found)
            self.fixed(el, eid, found)
            self.constraints(el, found)

    def cardinality(self, el: dict, eid: str, parents, found) -> None:
        lo = el.get("min", 0)
        hi = el.get("max", "*")
        counts = [0] * len(parents)
        for pi, _, _ in found:
            counts[pi] += 1
        for n in counts:
            if n < lo:
                self.fail(eid, "min", f"{n} found, at least {lo} required")
            if hi != "*" and n > int(hi):
                self.fail(eid, "max", f"{n} found, at most {hi} allowed")

    def fixed(self, el: dict, eid: str, found) -> None:
        for key, want in el.items():
            if key.startswith("fixed"):
                for _, _, v in found:
                    if v != want:
                        self.fail(eid, "fixed", f"{v!r} is not the fixed value {want!r}")
            elif key.startswith("pattern"):
                for _, _, v in found:
                    if not _matches(v, want):
                        self.fail(eid, "pattern", f"does not match the pattern {json.dumps(want)}")

    def constraints(self, el: dict, found) -> None:
        for c in el.get("constraint") or []:
            expr = c.get("expression")
            if not expr:
                continue
            for _, key, v in found:
                if c["key"] == "ele-1":
                    # ele-1 "hasValue() or (children().count() > id.count())", evaluated here: fhirpathpy
                    # 2.x has no hasValue() and its children() drops a primitive that only carries an
                    # extension (`_family` with a data-absent-reason), which FHIR counts as a child.
                    self.result.invariants_evaluated += 1
                    if not _has_content(v):
                        self.fail(el["id"], "ele-1", c.get("human", expr))
                    continue
                if not isinstance(v, dict):
                    self.result.unchecked.append(f"{self.label}: {c['key']} on a primitive at {el['id']}")
                    continue
                try:
                    out = self.p._evaluate(expr, v, _type_path(el["path"], key), self.root)
                except Exception as e:  # fhirpathpy raises bare Exceptions for what it does not implement
                    self.result.unchecked.append(f"{self.label}: {c['key']} at {el['id']}: {e}")
                    continue
                self.result.invariants_evaluated += 1
                if out != [True]:
                    self.fail(el["id"], c["key"], c.get("human", expr), "warning" if c.get("severity") == "warning" else "error")

    def slice_matcher(self, eid: str, el: dict, name: str, slice_name: str):
        """A predicate (key, value) -> bool selecting the slice's nodes, None when it cannot be decided here."""
        sliced = self.elements.get(eid.rsplit(":", 1)[0])
        discriminators = ((sliced or {}).get("slicing") or {}).get("discriminator") or []
        tests = []
        for d in discriminators:
            dtype, path = d["type"], d["path"]
            if dtype == "value" and path == "url":
                url = next((p for t in el.get("type") or [] for p in t.get("profile") or []), None)
                if url is None:
                    return None
                tests.append(lambda k, v, url=url: isinstance(v, dict) and v.get("url") == url)
            elif dtype in ("value", "pattern"):
                sub = self.elements.get(f"{eid}.{path}")
                want = next((sub[k] for k in (sub or {}) if k.startswith(("pattern", "fixed"))), None)
                if want is None:
                    return None
                tests.append(lambda k, v, path=path, want=want: isinstance(v, dict) and _matches(v.get(path), want))
            elif dtype == "type" and path == "$this":
                tests.append(lambda k, v, s=slice_name: k == s)
            elif dtype == "type" and path == "resource":
                sub = self.elements.get(f"{eid}.resource") or {}
                codes = {t["code"] for t in sub.get("type") or []}
                tests.append(lambda k, v, codes=codes: isinstance(v, dict)
                             and (v.get("resource") or {}).get("resourceType") in codes)
            elif dtype == "profile" and path == "resource":
                continue  # the entry's resource is checked against that profile on its own
            else:
                return None
        if not tests:
            return None
        return lambda k, v: all(t(k, v) for t in tests)
