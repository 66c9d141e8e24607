"""Stratus runtime client for Python: loads the handler named by _HANDLER
from LAMBDA_TASK_ROOT and serves it through the Lambda Runtime API."""

# Started with -S: the host's site hooks (.pth files) never run in a
# function, and their imports do not slow every cold start. What is
# imported here is what init needs; the rest waits until it is used.
import importlib
import importlib.machinery
import json
import logging
import os
import socket
import sys
import time

BASE = "/2018-06-01/runtime"


class Headers(dict):
    """Response headers by lower-case name; get ignores case."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class RuntimeClient:
    """HTTP/1.1 with keep-alive to the Runtime API, on a plain socket:
    http.client and the email parser it imports cost a cold start more
    than the requests it would make."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.addr = (host, int(port))
        self.sock = None
        self.buf = b""

    def _read_until(self, sep):
        while sep not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("runtime api closed the connection")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(sep)
        return head

    def _read_exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("runtime api closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _roundtrip(self, method, path, body, headers):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % self.addr]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        if body is not None:
            lines.append("Content-Length: %d" % len(body))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        hdrs = Headers()
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "chunked" in hdrs.get("transfer-encoding", ""):
            data = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                data += self._read_exactly(size)
                self._read_exactly(2)
        else:
            data = self._read_exactly(int(hdrs.get("content-length", "0")))
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, data

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def call(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                return self._roundtrip(method, path, body, headers)
            except (OSError, ValueError, IndexError):
                # A kept-alive connection may have been closed; reconnect once.
                self.close()
                if attempt:
                    raise

    def next(self):
        status, headers, body = self.call("GET", BASE + "/invocation/next")
        if status != 200:
            raise RuntimeError("runtime api /next answered %d" % status)
        return headers, body

    def respond(self, request_id, body):
        self.call("POST", BASE + "/invocation/%s/response" % request_id, body,
                  {"Content-Type": "application/json"})

    def error(self, path, doc):
        body = json.dumps(doc).encode()
        self.call("POST", path, body, {"Content-Type": "application/json",
                                       "Lambda-Runtime-Function-Error-Type": doc["errorType"]})


def error_doc(exc, request_id=None, error_type=None):
    import traceback
    doc = {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(user_frames(exc.__traceback__)),
    }
    if request_id:
        doc["requestId"] = request_id
    return doc


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.identity = _json_or_none(headers.get("Lambda-Runtime-Cognito-Identity"))
        self.client_context = _json_or_none(headers.get("Lambda-Runtime-Client-Context"))

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _json_or_none(value):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


class _RequestIdFilter(logging.Filter):
    """Puts the current invocation's request id on every record."""

    request_id = None

    def filter(self, record):
        record.aws_request_id = _RequestIdFilter.request_id
        return True


JSON_LOGS = os.environ.get("AWS_LAMBDA_LOG_FORMAT") == "JSON"

# LoggingConfig's level names in Python's.
LEVELS = {"TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR", "FATAL": "CRITICAL"}


def _utc(created):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + ".%03dZ" % (int(created * 1000) % 1000)


class JSONFormatter(logging.Formatter):
    """A record as Lambda's Python runtime writes it in the JSON format."""

    def format(self, record):
        doc = {"timestamp": _utc(record.created), "level": record.levelname, "message": record.getMessage(),
               "logger": record.name, "requestId": getattr(record, "aws_request_id", None)}
        if record.exc_info and record.exc_info[0]:
            import traceback
            doc["errorType"] = record.exc_info[0].__name__
            doc["errorMessage"] = str(record.exc_info[1])
            doc["stackTrace"] = traceback.format_exception(*record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging():
    """A root handler as Lambda's Python runtime installs it: each record
    as [LEVEL], its UTC time, the request id and the message, on one line
    (a message's newlines become carriage returns), or in the JSON format
    a JSON record; the root logger at AWS_LAMBDA_LOG_LEVEL, else WARNING in
    the text format and INFO in JSON, as on Lambda."""

    class LambdaFormatter(logging.Formatter):
        converter = time.gmtime

        def format(self, record):
            return super().format(record).replace("\n", "\r")

    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_RequestIdFilter())
    if JSON_LOGS:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(LambdaFormatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers = [handler]
    default = "INFO" if JSON_LOGS else "WARNING"
    root.setLevel(LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", default).upper(), default))


def log_error(doc, request_id=None, trace=True):
    """An uncaught error, in the log's format."""
    if JSON_LOGS:
        print(json.dumps({"timestamp": _utc(time.time()), "level": "ERROR", "message": doc["errorMessage"],
                          "errorType": doc["errorType"], "requestId": request_id, "stackTrace": doc["stackTrace"]}), flush=True)
    elif trace:
        print("[ERROR] %s: %s\n%s" % (doc["errorType"], doc["errorMessage"], "".join(doc["stackTrace"])), flush=True)
    else:
        print("[ERROR] %s: %s" % (doc["errorType"], doc["errorMessage"]), flush=True)


# The AWS SDK Lambda's Python runtimes bundle: boto3 and what it needs.
SDK = frozenset(("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"))


class _SDKFinder:
    """Finds the SDK's top-level modules in the host's site-packages, last,
    after the function's code and layers: a function sees the SDK as on
    Lambda, and nothing else of what the host has installed."""

    def __init__(self, dirs):
        self.dirs = dirs

    def find_spec(self, name, path=None, target=None):
        if path is not None or name not in SDK:
            return None
        return importlib.machinery.PathFinder.find_spec(name, self.dirs)


def isolate_site_packages():
    """Takes the host's site-packages off the module path, keeping what
    PYTHONPATH names (layers) and the SDK from the folders the server
    named (argv[1]: the interpreter's site-packages; -S left them off)."""
    keep = {p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    host = [p for p in sys.path if p not in keep and os.path.basename(p) in ("site-packages", "dist-packages")]
    sys.path[:] = [p for p in sys.path if p not in host]
    if len(sys.argv) > 1:
        host += [p for p in sys.argv[1].split(os.pathsep) if p and p not in host]
    sys.meta_path.append(_SDKFinder(host))


def user_frames(tb):
    """The traceback's frames without the runtime client's own."""
    import traceback
    frames = traceback.extract_tb(tb)
    return [f for f in frames if f.filename != __file__ and "importlib" not in f.filename]


def load_handler(handler, root):
    module_name, _, func_name = handler.rpartition(".")
    if not module_name or not func_name:
        raise ValueError("Bad handler '%s': expected module.function" % handler)
    module_name = module_name.replace("/", ".")
    sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise UserCodeSyntaxError("Syntax error in module '%s': %s" % (module_name, exc)) from exc
    except ImportError as exc:
        raise ImportModuleError("Unable to import module '%s': %s" % (module_name, exc)) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise HandlerNotFound("Handler '%s' missing on module '%s'" % (func_name, module_name))
    return func


class ImportModuleError(Exception):
    pass


class UserCodeSyntaxError(Exception):
    pass


class HandlerNotFound(Exception):
    pass


def receive_environment():
    """A pre-started sandbox waits here, interpreter and runtime client
    loaded, until the server gives it to a function: its environment
    arrives as JSON on descriptor 3 (its code is in place by then)."""
    # The site folders' part needs no environment: done while waiting.
    isolate_site_packages()
    os.write(3, b"r")  # waiting
    data = b""
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        data += chunk
    os.close(3)
    if not data:
        sys.exit(0)  # never given to a function
    os.environ.clear()
    os.environ.update(json.loads(data))
    time.tzset()
    global JSON_LOGS
    JSON_LOGS = os.environ.get("AWS_LAMBDA_LOG_FORMAT") == "JSON"
    os.chdir(os.environ.get("LAMBDA_TASK_ROOT", "/"))


def main():
    if "--warm" in sys.argv[1:]:
        receive_environment()
        setup_logging()
        serve(prepared=True)
        return
    workers = int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY") or "1")
    if workers > 1:
        supervise(workers)
    else:
        serve()


def supervise(workers):
    """A multi-concurrency environment, as Lambda Managed Instances run
    Python: one worker process per concurrent invocation, each with its own
    init and its own /next loop. The environment lives as long as all its
    workers do: one that dies takes the others with it, so the platform
    sees the crash and fails what the environment had in flight."""
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                serve()
            finally:
                os._exit(1)
        pids.append(pid)
    _, status = os.wait()
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code > 0 else 1)


def serve(prepared=False):
    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    if not prepared:
        setup_logging()
        isolate_site_packages()
    try:
        func = load_handler(os.environ.get("_HANDLER", ""), os.environ.get("LAMBDA_TASK_ROOT", "."))
    except Exception as exc:  # init failures are reported, then the process exits
        kind = {"ImportModuleError": "Runtime.ImportModuleError",
                "UserCodeSyntaxError": "Runtime.UserCodeSyntaxError",
                "HandlerNotFound": "Runtime.HandlerNotFound"}.get(type(exc).__name__)
        doc = error_doc(exc, error_type=kind)
        log_error(doc, trace=False)
        client.error(BASE + "/init/error", doc)
        sys.exit(1)

    while True:
        headers, body = client.next()
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        _RequestIdFilter.request_id = request_id
        trace = headers.get("Lambda-Runtime-Trace-Id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        try:
            event = json.loads(body) if body else {}
        except ValueError as exc:
            client.error(BASE + "/invocation/%s/error" % request_id,
                         error_doc(exc, request_id, "Runtime.UnmarshalError"))
            continue
        try:
            result = func(event, Context(headers))
            out = json.dumps(result).encode()
        except Exception as exc:
            doc = error_doc(exc, request_id)
            log_error(doc, request_id)
            client.error(BASE + "/invocation/%s/error" % request_id, doc)
            continue
        client.respond(request_id, out)


if __name__ == "__main__":
    main()
