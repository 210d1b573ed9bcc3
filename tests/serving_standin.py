"""A stand-in for TF Serving on 127.0.0.1, for tests: its REST and gRPC predict APIs over
an exported SavedModel, executed by `export.serving_client.LocalServer`.

    python tests/serving_standin.py --export_dir=BASE [--model_name=svae] [--lifetime=300]

Binds free ports on the loopback interface only, prints one JSON line
{"rest": PORT, "grpc": PORT} when both listen, and exits after --lifetime seconds (or
when terminated). REST: POST /v1/models/<name>[/versions/<n>]:predict, replies as
`LocalServer.rest` (HTTP 400 with {"error": ...} on a bad request, 404 for another
model). gRPC: tensorflow.serving.PredictionService/Predict (`LocalServer.grpc`;
INVALID_ARGUMENT / NOT_FOUND as TF Serving answers).
"""

import argparse
import json
import os
import re
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: E402

from export import serving_client  # noqa: E402

_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")


def _rest_handler(local, model_name):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            match = _PREDICT_PATH.match(self.path)
            if not match or match.group(1) != model_name:
                return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            except json.JSONDecodeError as e:
                return self._reply(400, {"error": f"JSON Parse error: {e}"})
            reply = local.rest(body)
            self._reply(400 if "error" in reply else 200, reply)

        def _reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet
            pass

    return Handler


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, local, model_name):
        self.local, self.model_name = local, model_name

    def Predict(self, request, context):  # noqa: N802 (the proto's name)
        if request.model_spec.name != self.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}")
        try:
            return self.local.grpc(request)
        except (tf.errors.InvalidArgumentError, KeyError, ValueError, TypeError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, getattr(e, "message", None) or str(e))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--model_name", default="svae")
    parser.add_argument("--lifetime", type=float, default=300.0, help="seconds before exiting")
    args = parser.parse_args()

    local = serving_client.LocalServer(args.export_dir)
    rest = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(local, args.model_name))
    threading.Thread(target=rest.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(local, args.model_name), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"rest": rest.server_address[1], "grpc": grpc_port}), flush=True)
    server.wait_for_termination(timeout=args.lifetime)
    server.stop(grace=None)
    rest.shutdown()


if __name__ == "__main__":
    main()
