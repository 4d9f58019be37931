"""Minimal raw HTTP calls for driving a daemon into a given state in tests."""
import json
import time
import urllib.error
import urllib.parse
import urllib.request


def rest(base_url, method, path, body=None, timeout=10, **params):
    url = base_url.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def status(base_url, job_id):
    return json.loads(rest(base_url, "GET", f"/jobs/{job_id}/status")[1])


def wait_status(base_url, job_id, states, timeout=30):
    deadline = time.time() + timeout
    current = None
    while time.time() < deadline:
        current = status(base_url, job_id)
        if current["status"] in states:
            return current
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {current and current['status']}, wanted {states}")


def submit(base_url, job_id, command_line, **params):
    assert rest(base_url, "POST", "/jobs", job_id=job_id)[0] == 200
    code, body = rest(base_url, "POST", f"/jobs/{job_id}/submit", command_line=command_line, **params)
    assert code == 200, body
