"""The benchmark job, shared by the client drivers: 3 small inputs, 2 outputs, one command; and the
machine's busy CPU, which the drivers read around their job phase."""
import os
import tempfile

from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs


class Tool:
    id = "bench_tool"
    version = "1.0"

    def __init__(self, tool_dir):
        self.tool_dir = tool_dir


def job_description(index: int):
    """(ClientJobDescription, ClientOutputs, [output paths]) for benchmark job ``index``."""
    base = tempfile.mkdtemp(prefix="bench-")
    inputs = []
    for k in range(3):
        # Galaxy-style names, from a range the outputs' names never reach
        path = os.path.join(base, f"dataset_{3 * index + k + 1}.dat")
        with open(path, "w") as handle:
            handle.write(f"input {k} of job {index}\n" * 20)
        inputs.append(path)
    work, meta, tool = (os.path.join(base, d) for d in ("w", "m", "t"))
    for d in (work, meta, tool):
        os.makedirs(d)
    out1, out2 = (os.path.join(base, f"dataset_{1_000_000_000 + 2 * index + n}.dat") for n in (1, 2))
    outputs = ClientOutputs(working_directory=work, metadata_directory=meta, output_files=[out1, out2])
    description = ClientJobDescription(
        command_line=f"cat {inputs[0]} {inputs[1]} > {out1}; cat {inputs[2]} > {out2}", tool=Tool(tool),
        config_files=[], client_inputs=ClientInputs([ClientInput(p, CLIENT_INPUT_PATH_TYPES.INPUT_PATH) for p in inputs]),
        client_outputs=outputs, working_directory=work, metadata_directory=meta)
    return description, outputs, [out1, out2]


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat: user, nice, system, irq, softirq;
    not idle, iowait or steal). A driver reads it around its job phase, so that the interpreter's
    start-up and imports do not count against the jobs."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
