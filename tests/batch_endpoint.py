"""A local HTTP endpoint that speaks the subset of the Azure Batch REST API the pipeline uses, for
the real `azure-batch` client (Azure Batch has no emulator).

It checks each request's auth scheme, api-version and required body fields the way the service
does, runs tasks' command lines as local processes (a container task runs the entrypoint its image
maps to, with only the task's environment settings for storage credentials) or, in container mode,
inside the task's image on a Docker engine as a Batch node does, uploads their output files to blob
storage through the SAS in their destination, as Batch does, and injects faults: a pool resize
error, slow nodes, a node preempted mid-task (the task runs again), throttling (429 with
Retry-After) and a busy service (503), an account quota reached. It refuses what the service
refuses: more than 100 tasks or over 1 MB in one add-task collection; and it fails a task as its
node would: a resource file it cannot download, an environment string or argument over Linux's
limit. An autoscaled pool gets the nodes its formula asks for, evaluated over the pool's tasks.

Each behaviour cites the Batch documentation it follows (REST reference under
https://learn.microsoft.com/rest/api/batchservice/). Where the documentation is unclear, the
endpoint takes the reading our code must not rely on; see `_stop`.
"""

import json
import math
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import isodate
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

# Required properties per request body, as marked "required" in the REST reference pages
# pool/add, job/add, task/add-collection (TaskAddParameter, OutputFile); a request without one
# fails with 400 MissingRequiredProperty (batch-status-and-error-codes).
REQUIRED = {
    "pool": [
        "id",
        "vmSize",
        "virtualMachineConfiguration.imageReference",
        "virtualMachineConfiguration.nodeAgentSKUId",
    ],
    "job": ["id", "poolInfo.poolId"],
    "task": ["id", "commandLine"],
    "outputFile": ["filePattern", "destination.container.containerUrl", "uploadOptions.uploadCondition"],
}
MAX_TASKS_PER_COLLECTION = 100  # task/add-collection: "The maximum number of Tasks is 100"
# BatchTaskGroup: "The total serialized size of this collection must be less than 1MB ... the request will
# fail with code 'RequestBodyTooLarge'". The stricter reading of "1MB" (10^6 bytes), which our code must meet.
MAX_COLLECTION_BYTES = 1_000_000
# execve(2): "the maximum length of a single string" of the argument and environment lists is
# MAX_ARG_STRLEN, 32 pages (131072 bytes on x86-64): a node cannot start a process past it (E2BIG).
MAX_ARG_STRLEN = 131072
# The service variables an autoscale formula of this endpoint can read (batch-automatic-scaling).
SERVICE_SAMPLES = ("ActiveTasks", "RunningTasks", "PendingTasks", "CurrentDedicatedNodes")


class BatchError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def lookup(body: dict, dotted: str):
    for key in dotted.split("."):
        body = body.get(key) if isinstance(body, dict) else None
    return body


def check_required(kind: str, body: dict) -> None:
    missing = [path for path in REQUIRED[kind] if lookup(body, path) in (None, "")]
    if missing:
        raise BatchError(400, "MissingRequiredProperty", f"{kind} body lacks {missing}")


@dataclass
class Faults:
    resize_error: tuple[str, str] | None = None  # (code, message) the pool's allocation fails with
    node_delay_s: float = 0.0  # how long nodes take to come up
    preempt_after_s: dict[str, float] = field(default_factory=dict)  # task id -> seconds into its run
    # The next requests are answered (status, code) with Retry-After `retry_after_s` (None: no such
    # header), e.g. (429, "TooManyRequests") as the service throttles, (503, "ServerBusy") as it sheds load.
    refusals: list[tuple[int, str]] = field(default_factory=list)
    retry_after_s: float | None = 1.0
    job_quota_reached: bool = False  # job/add answers 409 ActiveJobAndScheduleQuotaReached
    autoscale_interval_s: float = 1.0  # how often an autoscale formula is evaluated (the service: >= 5 min)


class BatchTestEndpoint:
    def __init__(self, account: str, workdir: Path, entrypoints: dict[str, list[str]], containers: bool = False):
        self.account = account
        self.workdir = workdir
        self.entrypoints = entrypoints  # image name -> the command its entrypoint runs
        self.containers = containers  # run container tasks in their image (docker), not via `entrypoints`
        self.faults = Faults()
        self.pools: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.processes: dict[tuple[str, str], subprocess.Popen] = {}
        # what the service was asked, for the tests: request bodies and collection sizes
        self.pools_created: dict[str, dict] = {}
        self.tasks_added: dict[str, dict] = {}
        self.collection_sizes: list[int] = []
        self.collection_bytes: list[int] = []
        self.requests_seen = 0
        self.deleted_pools: list[str] = []
        self.deleted_jobs: list[str] = []
        self.task_environments: dict[str, dict] = {}
        self.task_files: dict[str, dict[str, bytes]] = {}  # task id -> its resource files as downloaded
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._running = True

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._schedule_forever, daemon=True).start()

    def stop(self) -> None:
        self._running = False
        self.server.shutdown()
        with self.lock:
            for (job_id, task_id), process in self.processes.items():
                _kill(process, self.jobs[job_id]["tasks"][task_id].get("_container"))

    # REST

    def _handler(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _respond(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {}
                try:
                    with endpoint.lock:
                        endpoint.requests_seen += 1
                        refusal = endpoint.faults.refusals.pop(0) if endpoint.faults.refusals else None
                    if refusal and endpoint.faults.retry_after_s is not None:
                        headers["Retry-After"] = f"{endpoint.faults.retry_after_s:g}"
                    if refusal:
                        raise BatchError(*refusal, "injected: the service refuses for now; retry after a while")
                    if url.path.endswith("/addtaskcollection"):
                        endpoint.collection_bytes.append(len(raw))
                        if len(raw) >= MAX_COLLECTION_BYTES:
                            raise BatchError(
                                413,
                                "RequestBodyTooLarge",
                                f"The request body is {len(raw)} bytes; a task collection must be less than 1MB: "
                                "it should be retried again with fewer Tasks.",
                            )
                    body = json.loads(raw) if raw else {}
                    # authenticate-requests-to-the-azure-batch-service: "SharedKey {account}:{signature}";
                    # every request carries the api-version query parameter (api-versions page).
                    auth = self.headers.get("Authorization", "")
                    if not auth.startswith(f"SharedKey {endpoint.account}:"):
                        raise BatchError(403, "AuthenticationFailed", "expected SharedKey auth for the account")
                    if "api-version" not in parse_qs(url.query):
                        raise BatchError(400, "MissingRequiredQueryParameter", "api-version")
                    status, payload = endpoint.route(method, url.path, body)
                except BatchError as error:
                    status = error.status
                    payload = {"code": error.code, "message": {"lang": "en-US", "value": error.message}}
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json;odata=minimalmetadata")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._respond("GET")

            def do_POST(self):
                self._respond("POST")

            def do_DELETE(self):
                self._respond("DELETE")

        return Handler

    def route(self, method: str, path: str, body: dict) -> tuple[int, dict | None]:
        with self.lock:
            if (method, path) == ("POST", "/pools"):
                return self._create_pool(body)
            if (method, path) == ("GET", "/pools"):  # pool/list
                return 200, {"value": [self._pool_view(pool) for pool in self.pools.values()]}
            if (method, path) == ("POST", "/jobs"):
                return self._create_job(body)
            if (method, path) == ("GET", "/jobs"):
                return 200, {"value": [self._job_view(job) for job in self.jobs.values()]}
            if match := re.fullmatch(r"/pools/([^/]+)", path):
                return self._pool(method, match[1])
            if match := re.fullmatch(r"/jobs/([^/]+)", path):
                return self._job(method, match[1])
            if (match := re.fullmatch(r"/jobs/([^/]+)/terminate", path)) and method == "POST":
                return self._terminate_job(match[1])
            if (match := re.fullmatch(r"/jobs/([^/]+)/addtaskcollection", path)) and method == "POST":
                return self._add_tasks(match[1], body)
            if (match := re.fullmatch(r"/jobs/([^/]+)/tasks", path)) and method == "GET":
                return 200, {"value": [self._task_view(t) for t in self._existing_job(match[1])["tasks"].values()]}
        raise BatchError(400, "InvalidUri", f"{method} {path} is not part of this endpoint")

    def _create_pool(self, body: dict) -> tuple[int, None]:
        """pool/add: 201 Created; 409 PoolExists for a taken id; a pool is created "resizing" and
        reaches "steady" with its nodes, or with resizeErrors (pool/get: allocationState)."""
        check_required("pool", body)
        if lookup(body, "virtualMachineConfiguration.containerConfiguration") is not None:
            check_required_value(body, "virtualMachineConfiguration.containerConfiguration.type")
        if not body.get("enableAutoScale") and body.get("targetDedicatedNodes") is None:
            raise BatchError(400, "MissingRequiredProperty", "targetDedicatedNodes or enableAutoScale")
        if body["id"] in self.pools:
            raise BatchError(409, "PoolExists", f"The specified pool {body['id']} already exists.")
        if body.get("enableAutoScale"):  # pool/add evaluates the formula at once; a bad one is refused
            evaluate_formula(body.get("autoScaleFormula") or "", dict.fromkeys(SERVICE_SAMPLES, 0))
        self.pools_created[body["id"]] = body
        self.pools[body["id"]] = {
            **body,
            "state": "active",
            "allocationState": "resizing",
            "creationTime": now_iso(),
            "currentDedicatedNodes": 0,
            "currentLowPriorityNodes": 0,
            "ready_at": time.monotonic() + self.faults.node_delay_s,
        }
        return 201, None

    def _pool(self, method: str, pool_id: str) -> tuple[int, dict | None]:
        """pool/get, pool/delete (202 Accepted; tasks running on its nodes are stopped); 404 PoolNotFound."""
        if pool_id not in self.pools:
            raise BatchError(404, "PoolNotFound", f"The specified pool {pool_id} does not exist.")
        if method == "GET":
            return 200, self._pool_view(self.pools[pool_id])
        if method == "DELETE":
            for job in self.jobs.values():
                if job["poolInfo"]["poolId"] == pool_id:
                    for task in job["tasks"].values():
                        self._stop(job["id"], task, requeue=True)
            del self.pools[pool_id]
            self.deleted_pools.append(pool_id)
            return 202, None
        raise BatchError(405, "MethodNotAllowed", method)

    @staticmethod
    def _pool_view(pool: dict) -> dict:
        return {k: v for k, v in pool.items() if k != "ready_at"}

    def _create_job(self, body: dict) -> tuple[int, None]:
        """job/add: 201 Created; 409 JobExists for a taken id."""
        check_required("job", body)
        if self.faults.job_quota_reached:
            quota = "The specified account has reached its active job and schedule quota."
            raise BatchError(409, "ActiveJobAndScheduleQuotaReached", quota)
        if body["id"] in self.jobs:
            raise BatchError(409, "JobExists", f"The specified job {body['id']} already exists.")
        self.jobs[body["id"]] = {**body, "state": "active", "creationTime": now_iso(), "tasks": {}}
        return 201, None

    def _terminate_job(self, job_id: str) -> tuple[int, None]:
        """job/terminate: 202 Accepted; the job completes, its running tasks are terminated, its
        active ones are never scheduled; no task can be added to it."""
        job = self._existing_job(job_id)
        for task in job["tasks"].values():
            self._stop(job_id, task, requeue=False)
        job["state"] = "completed"
        return 202, None

    def _existing_job(self, job_id: str) -> dict:
        if job_id not in self.jobs:
            raise BatchError(404, "JobNotFound", f"The specified job {job_id} does not exist.")
        return self.jobs[job_id]

    def _job_view(self, job: dict) -> dict:
        return {k: v for k, v in job.items() if k != "tasks"}

    def _job(self, method: str, job_id: str) -> tuple[int, dict | None]:
        """job/get, job/delete (202 Accepted; the job's running tasks are terminated); 404 JobNotFound."""
        job = self._existing_job(job_id)
        if method == "GET":
            return 200, self._job_view(job)
        if method == "DELETE":
            for task in job["tasks"].values():
                self._stop(job_id, task, requeue=False)
            del self.jobs[job_id]
            self.deleted_jobs.append(job_id)
            return 202, None
        raise BatchError(405, "MethodNotAllowed", method)

    def _add_tasks(self, job_id: str, body: dict) -> tuple[int, dict]:
        """task/add-collection: 1..100 tasks; 200 with one TaskAddResult per task, a task id that
        exists in the job answered with status "clientError" and code TaskExists, the rest added."""
        job = self._existing_job(job_id)
        if job["state"] != "active":
            raise BatchError(409, "JobCompleted", f"The specified job {job_id} is already in a completed state.")
        tasks = body.get("value") or []
        if not 1 <= len(tasks) <= MAX_TASKS_PER_COLLECTION:
            raise BatchError(400, "InvalidPropertyValue", f"a task collection holds 1..100 tasks, got {len(tasks)}")
        self.collection_sizes.append(len(tasks))
        results = []
        for task in tasks:
            check_required("task", task)
            for output in task.get("outputFiles", []):
                check_required("outputFile", output)
            if task.get("containerSettings") is not None:
                check_required_value(task, "containerSettings.imageName")
            if task["id"] in job["tasks"]:
                results.append({"status": "clientError", "taskId": task["id"], "error": {"code": "TaskExists"}})
                continue
            self.tasks_added[task["id"]] = task
            job["tasks"][task["id"]] = {
                **task,
                "state": "active",
                "creationTime": now_iso(),
                "executionInfo": {"retryCount": 0, "requeueCount": 0},
            }
            results.append({"status": "success", "taskId": task["id"]})
        return 200, {"value": results}

    @staticmethod
    def _task_view(task: dict) -> dict:
        return {k: v for k, v in task.items() if not k.startswith("_")}

    # the service's scheduler

    def _schedule_forever(self) -> None:
        while self._running:
            with self.lock:
                self._settle_pools()
                self._reap_and_start()
            time.sleep(0.1)

    def _settle_pools(self) -> None:
        for pool in self.pools.values():
            if pool.get("enableAutoScale"):
                self._autoscale(pool)
            if pool["allocationState"] != "resizing" or time.monotonic() < pool["ready_at"]:
                continue
            pool["allocationState"] = "steady"
            if self.faults.resize_error:
                code, message = self.faults.resize_error
                pool["resizeErrors"] = [{"code": code, "message": message}]
            elif pool.get("enableAutoScale"):
                pool["currentDedicatedNodes"] = pool["_target"]
            else:
                pool["currentDedicatedNodes"] = pool.get("targetDedicatedNodes") or 0
                pool["currentLowPriorityNodes"] = pool.get("targetLowPriorityNodes") or 0

    def _autoscale(self, pool: dict) -> None:
        """Every evaluation interval, the formula's $TargetDedicatedNodes over the pool's tasks now
        (batch-automatic-scaling: $ActiveTasks, $RunningTasks, $PendingTasks = their sum); a new
        target resizes the pool, which takes the nodes' delay to reach it."""
        now = time.monotonic()
        if now < pool.get("_evaluated_at", -math.inf) + self.faults.autoscale_interval_s:
            return
        pool["_evaluated_at"] = now
        tasks = [t for j in self.jobs.values() if j["poolInfo"]["poolId"] == pool["id"] for t in j["tasks"].values()]
        active = sum(t["state"] == "active" for t in tasks)
        running = sum(t["state"] == "running" for t in tasks)
        counts = (active, running, active + running, pool["currentDedicatedNodes"])
        samples = dict(zip(SERVICE_SAMPLES, counts, strict=True))
        target = max(0, int(evaluate_formula(pool["autoScaleFormula"], samples).get("$TargetDedicatedNodes", 0)))
        if target != pool.get("_target"):
            pool.update(_target=target, allocationState="resizing", ready_at=now + self.faults.node_delay_s)

    def _reap_and_start(self) -> None:
        for job in self.jobs.values():
            pool = self.pools.get(job["poolInfo"]["poolId"])
            for task in job["tasks"].values():
                if task["state"] == "running":
                    self._watch(job["id"], task)
            if pool is None or pool["allocationState"] != "steady":
                continue
            slots = (pool["currentDedicatedNodes"] + pool["currentLowPriorityNodes"]) * pool.get("taskSlotsPerNode", 1)
            busy = sum(t["state"] == "running" for j in self.jobs.values() for t in j["tasks"].values()
                       if j["poolInfo"]["poolId"] == pool["id"])  # fmt: skip
            for task in job["tasks"].values():
                if busy >= slots or job["state"] != "active":  # a terminated job's tasks are not scheduled
                    break
                if task["state"] == "active":
                    self._start(job["id"], task)
                    busy += 1

    def _start(self, job_id: str, task: dict) -> None:
        """A task starts on a free slot (pool taskSlotsPerNode); TaskExecutionInformation.startTime:
        "If the Task has been restarted or retried, this is the most recent time at which the Task
        started running". A container task runs its image's entrypoint with the command line as
        arguments (batch-docker-container-workloads); only its environmentSettings reach it."""
        info = task["executionInfo"]
        task["_starts"] = task.get("_starts", 0) + 1
        task_dir = self.workdir / job_id / task["id"] / f"start{task['_starts']}"
        (task_dir / "wd").mkdir(parents=True)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE")}
        settings = {s["name"]: s["value"] for s in task.get("environmentSettings", [])}
        self.task_environments[task["id"]] = settings
        batch_variables = {
            "AZ_BATCH_TASK_ID": task["id"],
            "AZ_BATCH_JOB_ID": job_id,
            "AZ_BATCH_NODE_ROOT_DIR": str(self.workdir),
            "AZ_BATCH_TASK_DIR": str(task_dir),
            "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
        }
        environment.update(settings, **batch_variables)
        problem = self._prepare(task, task_dir / "wd", settings)
        if problem:
            self._complete(task, exit_code=None, failure=problem)
            return
        container = task.get("containerSettings")
        if container and not self._image_available(container["imageName"]):
            self._complete(task, exit_code=None, failure=("ContainerPullImageFailed", container["imageName"]))
            return
        if container and self.containers:
            task["_container"] = f"{job_id}-{task['id']}-{task['_starts']}"
            command = docker_run(task["_container"], container["imageName"], task_dir, [*settings, *batch_variables])
            command += shlex.split(task["commandLine"])
        elif container:
            command = self.entrypoints[container["imageName"]] + shlex.split(task["commandLine"])
        else:
            command = ["/bin/sh", "-c", task["commandLine"]]
        with open(task_dir / "stdout.txt", "wb") as out, open(task_dir / "stderr.txt", "wb") as err:
            self.processes[(job_id, task["id"])] = subprocess.Popen(
                command, cwd=task_dir / "wd", stdout=out, stderr=err, env=environment, start_new_session=True
            )
        task.update(state="running", _dir=task_dir, _started=time.monotonic())
        info["startTime"] = now_iso()
        task.setdefault("_first_start", time.monotonic())

    def _prepare(self, task: dict, working_dir: Path, settings: dict[str, str]) -> tuple[str, str] | None:
        """What a node does before the command line, and why it may fail instead: the resource files
        downloaded into the working directory (BatchTaskCreateOptions.resourceFiles; a failed
        download is TaskFailureInformationCodes BlobDownloadMiscError), the process started with
        the command line and environment (execve's E2BIG past MAX_ARG_STRLEN per string)."""
        for resource in task.get("resourceFiles", []):
            try:
                data = BlobClient.from_blob_url(resource["httpUrl"]).download_blob().readall()
            except HttpResponseError as error:
                return "BlobDownloadMiscError", f"{resource['filePath']}: {error.status_code} {error.reason}"
            (working_dir / resource["filePath"]).write_bytes(data)
            self.task_files.setdefault(task["id"], {})[resource["filePath"]] = data
        strings = [f"{name}={value}" for name, value in settings.items()] + shlex.split(task["commandLine"])
        too_long = [string.split("=", 1)[0][:40] for string in strings if len(string.encode()) > MAX_ARG_STRLEN]
        if too_long:
            return "ProcessStartFailed", f"E2BIG: Argument list too long ({', '.join(too_long)})"
        return None

    def _image_available(self, image: str) -> bool:
        """On a node, the pool's containerImageNames are pulled before tasks run; here an image is
        there when the engine has it (container mode) or the endpoint knows its entrypoint."""
        if not self.containers:
            return image in self.entrypoints
        return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0

    def _watch(self, job_id: str, task: dict) -> None:
        """TaskConstraints: maxWallClockTime counts from the first start, retries included, and ends
        the task (failureInfo MaxWallClockTimeExceeded); a non-zero exit is retried up to
        maxTaskRetryCount (retryCount, lastRetryTime) and then completes with result "failure"."""
        process = self.processes[(job_id, task["id"])]
        preempt_after = self.faults.preempt_after_s.get(task["id"])
        if preempt_after is not None and time.monotonic() - task["_started"] > preempt_after:
            del self.faults.preempt_after_s[task["id"]]
            self._stop(job_id, task, requeue=True)  # a spot node taken away: no output, no retry used
            return
        limit = lookup(task, "constraints.maxWallClockTime")
        if limit and time.monotonic() - task["_first_start"] > isodate.parse_duration(limit).total_seconds():
            _kill(process, task.get("_container"))
            self._upload_outputs(task, succeeded=False)
            self._complete(task, exit_code=None, failure=("MaxWallClockTimeExceeded", "task ran out of time"))
            return
        exit_code = process.poll()
        if exit_code is None:
            return
        del self.processes[(job_id, task["id"])]
        self._upload_outputs(task, succeeded=exit_code == 0)
        info = task["executionInfo"]
        if exit_code != 0 and info["retryCount"] < (lookup(task, "constraints.maxTaskRetryCount") or 0):
            info["retryCount"] += 1
            info["lastRetryTime"] = now_iso()
            task["state"] = "active"
            return
        failure = None if exit_code == 0 else ("FailureExitCode", "The task exited with a failure exit code")
        self._complete(task, exit_code, failure)

    def _complete(self, task: dict, exit_code: int | None, failure: tuple[str, str] | None) -> None:
        info = task["executionInfo"]
        info.update(endTime=now_iso(), result="failure" if failure else "success")
        if exit_code is not None:
            info["exitCode"] = exit_code
        if failure:
            info["failureInfo"] = {"category": "userError", "code": failure[0], "message": failure[1]}
        task["state"] = "completed"

    def _stop(self, job_id: str, task: dict, requeue: bool) -> None:
        """Stop a running task; with `requeue`, it goes back to "active" and runs again later, as
        BatchNodeState "preempted" documents for spot nodes ("Tasks which were running on the
        Compute Node when it was preempted will be rescheduled"). Whether the service then counts
        the task in requeueCount is not documented (requeueCount is documented for requeues a user
        asks for: pool resize, job disable), so this endpoint leaves requeueCount alone and our code
        never reads it; a preemption shows as a new startTime with an unchanged retryCount."""
        process = self.processes.pop((job_id, task["id"]), None)
        if process is not None:
            _kill(process, task.get("_container"))
        if requeue and task["state"] == "running":
            task["state"] = "active"

    def _upload_outputs(self, task: dict, succeeded: bool) -> None:
        """Batch's output files (batch-task-output-files; OutputFile, OutputFileUploadCondition):
        each pattern resolved from the task's working directory, uploaded to the destination
        container with the SAS in its URL, on taskSuccess / taskFailure / taskCompletion."""
        for output in task.get("outputFiles", []):
            condition = output["uploadOptions"]["uploadCondition"].lower()
            if condition == "tasksuccess" and not succeeded or condition == "taskfailure" and succeeded:
                continue
            source = (task["_dir"] / "wd" / output["filePattern"]).resolve()
            container_url, _, sas = output["destination"]["container"]["containerUrl"].partition("?")
            blob_path = output["destination"]["container"].get("path") or source.name
            if source.exists():
                BlobClient.from_blob_url(f"{container_url}/{blob_path}?{sas}").upload_blob(
                    source.read_bytes(), overwrite=True
                )


def check_required_value(body: dict, dotted: str) -> None:
    if lookup(body, dotted) in (None, ""):
        raise BatchError(400, "MissingRequiredProperty", dotted)


def docker_run(name: str, image: str, task_dir: Path, variables: list[str]) -> list[str]:
    """How a Batch node runs a container task (batch-docker-container-workloads): the image's
    entrypoint with the command line as arguments, the task directory mounted at the same path and
    the working directory set to the task's (containerSettings.workingDirectory
    "taskWorkingDirectory", the default), the task's environment settings and AZ_BATCH_*
    variables (passed by name, so no secret is on a command line). Host networking, as the
    engine here has no bridge. The image must be on the node already (`--pull never`)."""
    (task_dir / "wd").chmod(0o777)  # the image's non-root user writes there, as on a node
    command = ["docker", "run", "--rm", "--pull", "never", "--name", name, "--network", "host"]
    command += ["--volume", f"{task_dir}:{task_dir}", "--workdir", str(task_dir / "wd")]
    for variable in variables:
        command += ["--env", variable]
    return [*command, image]


def _kill(process: subprocess.Popen, container: str | None = None) -> None:
    """Stop a task's process; a container task's container too (killing `docker run` leaves it)."""
    if container:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def evaluate_formula(formula: str, samples: dict[str, float]) -> dict[str, float]:
    """The values an autoscale formula assigns, for the subset of the formula language
    (batch-automatic-scaling) that pending-task formulas use: `;`-separated assignments, `//`
    comments, numbers, + - * /, comparisons, `?:`, min/max/avg, TimeInterval_* constants, and
    service variables whose GetSample(...) is the current value and GetSamplePercent(...) 100.
    Anything else is refused, as the service refuses a formula it cannot parse."""
    formula = re.sub(r"//[^\n]*", "", formula)
    variables: dict[str, float] = {f"${name}": value for name, value in samples.items()}
    for statement in filter(str.strip, formula.split(";")):
        name, equals, expression = statement.partition("=")
        if not equals or not re.fullmatch(r"\s*\$?\w+\s*", name):
            raise BatchError(400, "InvalidAutoScaleFormula", f"not an assignment: {statement.strip()!r}")
        variables[name.strip()] = _Expression(expression, variables).value()
    return variables


class _Expression:
    """A recursive-descent reader of one formula expression."""

    TOKEN = re.compile(r"\s*(\d+\.?\d*|\$\w+(?:\.GetSample(?:Percent)?)?|\w+|<=|>=|==|!=|[-+*/()<>?:,])")
    CONSTANTS = {"TimeInterval_Second": 1, "TimeInterval_Minute": 60, "TimeInterval_Hour": 3600,
                 "taskcompletion": 0, "requeue": 0, "retaineddata": 0, "terminate": 0}  # fmt: skip
    FUNCTIONS = {"min": min, "max": max, "avg": lambda *values: sum(values) / len(values)}

    def __init__(self, text: str, variables: dict[str, float]):
        self.tokens = self.TOKEN.findall(text)
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise BatchError(400, "InvalidAutoScaleFormula", f"cannot read {text.strip()!r}")
        self.variables = variables

    def value(self) -> float:
        result = self._ternary()
        if self.tokens:
            raise BatchError(400, "InvalidAutoScaleFormula", f"unexpected {self.tokens[0]!r}")
        return result

    def _take(self, *expected: str) -> str | None:
        if self.tokens and self.tokens[0] in expected:
            return self.tokens.pop(0)
        return None

    def _ternary(self) -> float:
        condition = self._comparison()
        if not self._take("?"):
            return condition
        then = self._ternary()
        if not self._take(":"):
            raise BatchError(400, "InvalidAutoScaleFormula", "`?` without `:`")
        otherwise = self._ternary()
        return then if condition else otherwise

    def _comparison(self) -> float:
        left = self._sum()
        operator = self._take("<", ">", "<=", ">=", "==", "!=")
        if operator is None:
            return left
        right = self._sum()
        return float({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right,
                      "==": left == right, "!=": left != right}[operator])  # fmt: skip

    def _sum(self) -> float:
        value = self._product()
        while operator := self._take("+", "-"):
            value = value + self._product() if operator == "+" else value - self._product()
        return value

    def _product(self) -> float:
        value = self._unary()
        while operator := self._take("*", "/"):
            value = value * self._unary() if operator == "*" else value / self._unary()
        return value

    def _unary(self) -> float:
        return -self._unary() if self._take("-") else self._primary()

    def _arguments(self) -> list[float]:
        if not self._take("("):
            raise BatchError(400, "InvalidAutoScaleFormula", "expected `(`")
        values = [] if self._take(")") else [self._ternary()]
        while values and not self._take(")"):
            if not self._take(","):
                raise BatchError(400, "InvalidAutoScaleFormula", "expected `,` or `)`")
            values.append(self._ternary())
        return values

    def _primary(self) -> float:
        if not self.tokens:
            raise BatchError(400, "InvalidAutoScaleFormula", "the formula ends too soon")
        token = self.tokens.pop(0)
        if token == "(":
            value = self._ternary()
            self._take(")")
            return value
        if re.fullmatch(r"\d+\.?\d*", token):
            return float(token)
        if token.endswith((".GetSample", ".GetSamplePercent")):
            self._arguments()
            name = token.split(".")[0]
            if name not in self.variables:
                raise BatchError(400, "InvalidAutoScaleFormula", f"unknown service variable {name}")
            return 100.0 if token.endswith("Percent") else self.variables[name]
        if token in self.FUNCTIONS:
            return float(self.FUNCTIONS[token](*self._arguments()))
        if token in self.variables:
            return self.variables[token]
        if token in self.CONSTANTS:
            return float(self.CONSTANTS[token])
        raise BatchError(400, "InvalidAutoScaleFormula", f"unknown name {token!r}")
