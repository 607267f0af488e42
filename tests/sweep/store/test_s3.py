"""Object storage: a sweep whose Tune experiments live in s3://, served by a real
S3-compatible server (moto in server mode) on loopback."""

import subprocess
import sys

import pandas as pd
import pytest

from sweep.plan.packs import make_plan
from sweep.plan.spec import parse

SPEC = """
name = "s3t"
preset = "tiny"
[fixed]
epochs = 4
train_size = 256
[grid]
weight_decay = [0.0, 0.1]
seed = [0, 1]
[run]
pack = 2
checkpoint_every = 8
storage = "s3://wdsweep-test/studies"
"""


@pytest.mark.slow
def test_a_sweep_stores_its_experiments_in_s3_and_collects_results(tmp_path, s3_server,
                                                                   cli_env):
    import boto3

    creds = dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                 AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=s3_server)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="wdsweep-test")
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(SPEC)
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", spec_file, "--study", study,
                        "--no-report"], env={**cli_env, **creds}, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = pd.read_csv(study / "results.csv")
    assert set(res.config_hash) == {m.config_hash() for m in make_plan(parse(SPEC)).members}
    assert (res.status == "completed").all()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="wdsweep-test",
                                                 Prefix="studies/s3t-")["Contents"]]
    assert any(k.endswith("/exp-000/tuner.pkl") for k in keys)
    assert any("/checkpoint_" in k and k.endswith("metrics.csv") for k in keys)
    assert not (study / "experiments").exists()  # nothing went to local storage

    # Extending the study on S3: only the new members run, in a second experiment there.
    spec_file.write_text(SPEC.replace("[0.0, 0.1]", "[0.0, 0.1, 1.0]"))
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", spec_file, "--study", study,
                        "--no-report"], env={**cli_env, **creds}, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    again = pd.read_csv(study / "results.csv")
    assert len(again) == 6 and (again.status == "completed").all()
    assert (again.set_index("config_hash").loc[res.config_hash, "experiment"] == "exp-000").all()
    assert set(again.loc[again.weight_decay.round(9) == 1.0, "experiment"]) == {"exp-001"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="wdsweep-test",
                                                 Prefix="studies/s3t-")["Contents"]]
    assert any(k.endswith("/exp-001/tuner.pkl") for k in keys)
