"""Hypothesis profiles and the mail setup of the property-based tests.

Profiles (HYPOTHESIS_PROFILE picks one; default `ci` when CI=true, else `dev`):
  ci    derandomized: the same examples on every run, a fixed budget, no deadline
  dev   random examples, the same budget
  long  random, 20 times the budget: `HYPOTHESIS_PROFILE=long pytest tests/fuzz`
Each test states its budget for `ci` through fuzz_support.examples(n).

The real command runs as the delivery user against one mail setup per
module (tests/functional/conftest.py's MailSetup), emptied between examples;
it sits two private directories deep, so a path that escapes the base by
`..` lands somewhere a test looks (fuzz_support.FuzzMail.check_outside).
"""
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

from support import IN_CI

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
           HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, database=None,
                          suppress_health_check=SLOW_OK, print_blob=True)
settings.register_profile("dev", max_examples=100, deadline=None, database=None,
                          suppress_health_check=SLOW_OK, print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None, database=None,
                          suppress_health_check=SLOW_OK, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))


@pytest.fixture(scope="module")
def fuzz_mail(delivery_user, installed_vdeliver):
    from fuzz_support import FuzzMail
    outer = tempfile.mkdtemp(prefix="vdeliver-fuzz-", dir="/var/tmp")
    inputs = tempfile.mkdtemp(prefix="vdeliver-fuzz-input-", dir="/var/tmp")
    os.chmod(outer, 0o755)
    os.chmod(inputs, 0o755)
    try:
        yield FuzzMail(outer, inputs, delivery_user)
    finally:
        shutil.rmtree(outer, ignore_errors=True)
        shutil.rmtree(inputs, ignore_errors=True)
