"""Stock OpenAPI tools run against tokenhost's served document (tests/it/openapi.rs).

    python3 tests/openapi_tools.py conforms SCHEMA_NAME < {"doc": ..., "instances": [...]}
        Validates each instance against components.schemas[SCHEMA_NAME] of the document
        (JSON Schema 2020-12, as OpenAPI 3.1 uses), printing every violation.

    python3 tests/openapi_tools.py client DOC_JSON OUT_DIR BASE_URL TOKEN
        Generates a Python client with openapi-python-client, checks that it has a function
        for every operationId, and lists the clients through it.
"""

import importlib
import json
import pathlib
import subprocess
import sys


def conforms(schema_name):
    given = json.load(sys.stdin)
    import jsonschema

    doc = given["doc"]
    root = dict(doc)
    root["$ref"] = f"#/components/schemas/{schema_name}"
    validator = jsonschema.Draft202012Validator(root)
    failed = False
    for i, instance in enumerate(given["instances"]):
        for error in validator.iter_errors(instance):
            failed = True
            print(f"instance {i}: {error.json_path}: {error.message}")
    sys.exit(1 if failed else 0)


def client(doc_path, out_dir, base_url, token):
    doc = json.loads(pathlib.Path(doc_path).read_text())
    out = pathlib.Path(out_dir)
    generated = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate",
         "--path", doc_path, "--output-path", str(out), "--meta", "none", "--overwrite"],
        capture_output=True, text=True)
    print(generated.stdout, generated.stderr)
    if generated.returncode != 0 or "Warning" in generated.stdout + generated.stderr:
        print("openapi-python-client did not generate the whole client cleanly")
        sys.exit(1)

    sys.path.insert(0, str(out.parent))
    package = out.name
    missing = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            op_id = operation["operationId"]
            tag = operation["tags"][0].replace("-", "_")
            try:
                module = importlib.import_module(f"{package}.api.{tag}.{op_id}")
            except ImportError as e:
                missing.append(f"{method} {path} ({op_id}): {e}")
                continue
            if not hasattr(module, "sync_detailed"):
                missing.append(f"{method} {path} ({op_id}): no sync_detailed")
    if missing:
        print("operations the generated client lacks:\n" + "\n".join(missing))
        sys.exit(1)

    # And it works: the clients, listed through it.
    api = importlib.import_module(package)
    list_clients = importlib.import_module(f"{package}.api.clients.list_clients")
    with api.AuthenticatedClient(base_url=base_url, token=token) as http:
        response = list_clients.sync_detailed(client=http)
    if response.status_code != 200:
        print(f"list_clients through the generated client: {response.status_code}")
        sys.exit(1)
    print(json.dumps({"listed": json.loads(response.content)}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"conforms": conforms, "client": client}[command](*args)
