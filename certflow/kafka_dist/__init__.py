"""Apache Kafka's jars, fetched with Maven (``pom.xml`` beside this module) into a
cache outside the repository, and the Java runtime that runs them."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

#: The Apache Kafka release the ``kafka`` engine runs (``CERTFLOW_KAFKA_VERSION`` overrides).
KAFKA_VERSION = "4.1.1"
#: The pom naming the jars the broker needs; Maven resolves the rest.
POM = Path(__file__).parent / "pom.xml"


def kafka_version() -> str:
    return os.environ.get("CERTFLOW_KAFKA_VERSION") or KAFKA_VERSION


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "certflow"


def kafka_libs(version: str | None = None) -> Path:
    """Where the jars of Kafka ``version`` are kept (fetched or not)."""
    return cache_dir() / f"kafka-{version or kafka_version()}" / "libs"


def fetch_kafka(version: str | None = None, *, quiet: bool = True) -> Path:
    """The directory of Kafka's jars, fetched with Maven first if they are not there yet.

    ``mvn dependency:copy-dependencies`` on ``certflow/kafka_dist/pom.xml`` copies
    ``org.apache.kafka:kafka_2.13`` and everything it needs at run time (plus a
    logging backend) into a staging directory, renamed into place once complete;
    a lock keeps two first starts from fetching at once.
    """
    version = version or kafka_version()
    libs = kafka_libs(version)
    done = libs / ".complete"
    if done.exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise FileNotFoundError(
                "Maven (mvn) fetches Apache Kafka's jars: install it (apt-get install maven, "
                "or `make kafka` as root), or use --engine noida"
            )
        staging = libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        command = [
            mvn, "-B", *(["-q"] if quiet else []), "-f", str(POM), f"-Dkafka.version={version}",
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=quiet, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stdout or "")[-3000:] if quiet else ""
            raise RuntimeError(f"Maven could not fetch Apache Kafka {version}:\n{detail}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        done.write_text(version + "\n")
    return libs


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise FileNotFoundError(
            "Apache Kafka needs Java 17 or newer: install a JRE (apt-get install "
            "default-jre-headless, or `make kafka` as root), or use --engine noida"
        )
    return found

