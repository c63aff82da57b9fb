"""Service lists and service definitions for the Open311 test server.

A service list is what a GeoReport v2 server answers to ``GET services.{fmt}``: a list of
services, each with ``service_code``, ``service_name``, ``description``, ``metadata``,
``type`` (``realtime``, ``batch`` or ``blackbox``), ``keywords`` and ``group``. A service
definition is the answer to ``GET services/{service_code}.{fmt}``: the service code and its
``attributes`` (extra form fields, sent as ``attribute[CODE]``).

Both are read from a city's real responses, as JSON or XML (the two formats of the spec),
or taken from the small Baltimore catalogue built into this module (``"baltimore"``).
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_TYPES = ("realtime", "batch", "blackbox")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
BUILTIN = ("baltimore",)

Service = dict[str, Any]
Definition = dict[str, Any]


class CatalogError(ValueError):
    """A service list or definition cannot be read; the message says which file and why."""


# The Baltimore catalogue: one service per 311 `SRType` that config/cities/baltimore.toml
# maps a category to. The codes are the city's; names, descriptions and the attributes were
# written for testing overheard's Open311 sink (Baltimore runs no public GeoReport endpoint
# whose list we could copy). `tests/testing/test_open311_server.py` checks that the codes
# still match the city profile.
_BALTIMORE = [
    (
        "TRM-Pothole Repair",
        "Pothole Repair",
        "Transportation",
        "A pothole or failed patch in the roadway.",
        "pothole, road, pavement",
    ),
    (
        "BGE-StLight(s) Out",
        "Streetlight(s) Out",
        "Transportation",
        "One or more street lights are out (BGE maintains them).",
        "streetlight, light, dark",
    ),
    (
        "TRT-Traffic Signal Repairs",
        "Traffic Signal Repairs",
        "Transportation",
        "A traffic or pedestrian signal is out, stuck or damaged.",
        "signal, traffic light",
    ),
    (
        "HCD-Illegal Dumping",
        "Illegal Dumping",
        "Housing & Community Development",
        "Trash, tires, furniture or debris dumped on public or private property.",
        "dumping, trash, debris",
    ),
    (
        "SW-Dirty Alley",
        "Dirty Alley",
        "Solid Waste",
        "An alley that needs cleaning.",
        "alley, dirty, trash",
    ),
    (
        "SW-Graffiti Removal",
        "Graffiti Removal",
        "Solid Waste",
        "Graffiti on a public or private structure.",
        "graffiti, tagging",
    ),
    (
        "TEC-Footways Complaint",
        "Footways Complaint",
        "Transportation",
        "A broken, uneven or obstructed sidewalk.",
        "sidewalk, footway, curb",
    ),
    (
        "WW-Water Leak (Exterior)",
        "Water Leak (Exterior)",
        "Water & Wastewater",
        "Water leaking from a main, hydrant or the street.",
        "water, leak, hydrant",
    ),
    (
        "FOR-Tree Inspection",
        "Tree Inspection",
        "Forestry",
        "A city tree that is dead, damaged or fallen.",
        "tree, limb, forestry",
    ),
    (
        "TRS-Parking Complaint",
        "Parking Complaint",
        "Transportation",
        "An abandoned or illegally parked vehicle.",
        "parking, abandoned vehicle",
    ),
    (
        "HCD-Vacant Building",
        "Vacant Building",
        "Housing & Community Development",
        "A vacant building that is open, unsafe or needs boarding.",
        "vacant, building",
    ),
    (
        "SW-Rat Rubout",
        "Rat Rubout",
        "Solid Waste",
        "Rats or signs of rats on a property or in an alley.",
        "rats, rodents",
    ),
    (
        "HLTH-EV Noise",
        "Environmental Noise",
        "Health",
        "Loud music, machinery or other environmental noise.",
        "noise, loud",
    ),
]

_BALTIMORE_DEFINITIONS: list[Definition] = [
    {
        "service_code": "TRM-Pothole Repair",
        "attributes": [
            {
                "variable": True,
                "code": "LOCATION_TYPE",
                "datatype": "singlevaluelist",
                "required": True,
                "datatype_description": None,
                "order": 1,
                "description": "Where is the pothole?",
                "values": [
                    {"key": "street", "name": "Street"},
                    {"key": "alley", "name": "Alley"},
                    {"key": "crosswalk", "name": "Crosswalk"},
                ],
            },
            {
                "variable": True,
                "code": "SIZE_IN",
                "datatype": "number",
                "required": False,
                "datatype_description": "Approximate width in inches.",
                "order": 2,
                "description": "How wide is it?",
                "values": [],
            },
        ],
    },
    {
        "service_code": "HCD-Illegal Dumping",
        "attributes": [
            {
                "variable": False,
                "code": "NOTICE",
                "datatype": "string",
                "required": False,
                "datatype_description": None,
                "order": 1,
                "description": "Report dumping in progress to 911.",
                "values": [],
            },
            {
                "variable": True,
                "code": "MATERIAL",
                "datatype": "multivaluelist",
                "required": True,
                "datatype_description": None,
                "order": 2,
                "description": "What was dumped?",
                "values": [
                    {"key": "tires", "name": "Tires"},
                    {"key": "mattress", "name": "Mattress or furniture"},
                    {"key": "bulk", "name": "Bulk trash"},
                    {"key": "construction", "name": "Construction debris"},
                ],
            },
            {
                "variable": True,
                "code": "SEEN_AT",
                "datatype": "datetime",
                "required": False,
                "datatype_description": "When it was dumped, if known.",
                "order": 3,
                "description": "When?",
                "values": [],
            },
        ],
    },
]


def baltimore_services() -> list[Service]:
    """The built-in Baltimore service list (a fresh copy)."""
    with_metadata = {d["service_code"] for d in _BALTIMORE_DEFINITIONS}
    return [
        {
            "service_code": code,
            "service_name": name,
            "description": description,
            "metadata": code in with_metadata,
            "type": "realtime",
            "keywords": keywords,
            "group": group,
        }
        for code, name, group, description, keywords in _BALTIMORE
    ]


def baltimore_definitions() -> list[Definition]:
    """The built-in Baltimore service definitions (a fresh copy)."""
    return copy.deepcopy(_BALTIMORE_DEFINITIONS)


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"


def _text(element: ET.Element, tag: str) -> str | None:
    child = element.find(tag)
    if child is None:
        return None
    return (child.text or "").strip()


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CatalogError(f"{path}: not readable XML: {exc}") from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: not readable JSON: {exc}") from exc


def _check_service(service: Any, origin: str) -> Service:
    if not isinstance(service, dict) or "service_code" not in service:
        raise CatalogError(f"{origin}: a service without service_code: {service!r}")
    out = dict(service)
    out.setdefault("service_name", str(service["service_code"]))
    out.setdefault("description", "")
    out.setdefault("metadata", False)
    out.setdefault("type", "realtime")
    out.setdefault("keywords", "")
    out.setdefault("group", "")
    if out["type"] not in SERVICE_TYPES:
        raise CatalogError(f"{origin}: service {out['service_code']}: unknown type {out['type']!r}")
    return out


def load_services(source: str | Path) -> list[Service]:
    """Read a GET services response (``.json`` or ``.xml``), or a built-in name."""
    if str(source) in BUILTIN:
        return baltimore_services()
    path = Path(source)
    if path.suffix.lower() == ".xml":
        root = _parse_xml(path)
        if root.tag != "services":
            raise CatalogError(f"{path}: the root element is <{root.tag}>, not <services>")
        services = []
        for element in root.findall("service"):
            service: Service = {}
            for child in element:
                service[child.tag] = (child.text or "").strip()
            service["metadata"] = _bool(service.get("metadata"))
            services.append(_check_service(service, str(path)))
    else:
        data = _read_json(path)
        if not isinstance(data, list):
            raise CatalogError(f"{path}: a services response is a JSON list")
        services = [_check_service(s, str(path)) for s in data]
    codes = [str(s["service_code"]) for s in services]
    if len(set(codes)) != len(codes):
        raise CatalogError(f"{path}: service codes repeat")
    return services


def _check_definition(definition: Any, origin: str) -> Definition:
    if not isinstance(definition, dict) or "service_code" not in definition:
        raise CatalogError(f"{origin}: a service definition without service_code")
    attributes = []
    for attribute in definition.get("attributes") or []:
        a = {
            "variable": bool(attribute.get("variable", True)),
            "code": str(attribute["code"]),
            "datatype": attribute.get("datatype", "string"),
            "required": bool(attribute.get("required", False)),
            "datatype_description": attribute.get("datatype_description"),
            "order": int(attribute.get("order") or 0),
            "description": attribute.get("description", ""),
            "values": [
                {"key": v["key"], "name": v.get("name", "")} for v in attribute.get("values") or []
            ],
        }
        if a["datatype"] not in DATATYPES:
            raise CatalogError(
                f"{origin}: attribute {a['code']}: unknown datatype {a['datatype']!r}"
            )
        attributes.append(a)
    attributes.sort(key=lambda a: a["order"])
    return {"service_code": definition["service_code"], "attributes": attributes}


def _definition_from_xml(root: ET.Element, origin: str) -> Definition:
    # The spec wraps attributes in <attributes>; some servers (and the Code for America
    # fixture) put <attribute> directly under <service_definition>. Both are read.
    elements = root.findall("attributes/attribute") or root.findall("attribute")
    attributes = []
    for element in elements:
        values = [
            {"key": _text(v, "key") or "", "name": _text(v, "name") or ""}
            for v in element.findall("values/value")
        ]
        attributes.append(
            {
                "variable": _bool(_text(element, "variable") or "true"),
                "code": _text(element, "code") or "",
                "datatype": _text(element, "datatype") or "string",
                "required": _bool(_text(element, "required")),
                "datatype_description": _text(element, "datatype_description") or None,
                "order": int(_text(element, "order") or 0),
                "description": _text(element, "description") or "",
                "values": values,
            }
        )
    code = _text(root, "service_code")
    return _check_definition({"service_code": code, "attributes": attributes}, origin)


def load_definitions(source: str | Path, service_code: str | None = None) -> list[Definition]:
    """Read service definitions from a file.

    JSON: one definition, a list of them, or an object mapping service codes to them. XML:
    one ``<service_definition>`` (or several under any root). `service_code` attaches a
    single definition to another service (the fixtures' definition is for ``DMV66``, which
    no stored service list offers).
    """
    if str(source) in BUILTIN:
        return baltimore_definitions()
    path = Path(source)
    if path.suffix.lower() == ".xml":
        root = _parse_xml(path)
        roots = [root] if root.tag == "service_definition" else root.findall("service_definition")
        definitions = [_definition_from_xml(r, str(path)) for r in roots]
    else:
        data = _read_json(path)
        if isinstance(data, dict) and "service_code" in data:
            data = [data]
        elif isinstance(data, dict):
            data = [{**value, "service_code": key} for key, value in data.items()]
        if not isinstance(data, list):
            raise CatalogError(f"{path}: expected service definitions")
        definitions = [_check_definition(d, str(path)) for d in data]
    if service_code is not None:
        if len(definitions) != 1:
            raise CatalogError(f"{path}: a service code can be given only for one definition")
        definitions[0]["service_code"] = service_code
    return definitions


@dataclass
class Catalog:
    """The services a server offers, and the definitions of those that have attributes."""

    services: list[Service]
    definitions: dict[str, Definition] = field(default_factory=dict)

    @classmethod
    def build(cls, services: list[Service], definitions: Iterable[Definition] = ()) -> Catalog:
        catalog = cls([dict(s) for s in services])
        known = {str(s["service_code"]): s for s in catalog.services}
        for definition in definitions:
            code = str(definition["service_code"])
            if code not in known:
                raise CatalogError(f"a service definition for an unknown service_code {code!r}")
            # The definition answers with the code as the service list spells it.
            catalog.definitions[code] = {**definition, "service_code": known[code]["service_code"]}
            if definition["attributes"]:
                known[code]["metadata"] = True
        return catalog

    def service(self, code: str) -> Service | None:
        for service in self.services:
            if str(service["service_code"]) == code:
                return service
        return None

    def definition(self, code: str) -> Definition | None:
        service = self.service(code)
        if service is None:
            return None
        return self.definitions.get(
            code, {"service_code": service["service_code"], "attributes": []}
        )


def parse_definition_option(value: str) -> tuple[str, str | None]:
    """``FILE`` or ``CODE=FILE`` (the command line's ``--definition``) → (file, code)."""
    code, sep, path = value.partition("=")
    if sep and not Path(value).exists():
        return path, code
    return value, None
