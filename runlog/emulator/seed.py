"""The emulator's seed data: what the AWS CLI documentation's start-run examples need, and
those five examples verbatim (EXAMPLES), as the documentation prints them."""

from __future__ import annotations

import shlex
from typing import Any

ACCOUNT = "111122223333"
SHARED_OWNER = "123456789012"
EPOCH = "2026-01-15T09:00:00+00:00"


def _required(*names: str, optional: tuple[str, ...] = ()) -> dict:
    template = {name: {"description": name.replace("_", " "), "optional": False} for name in names}
    template.update({name: {"description": name.replace("_", " "), "optional": True} for name in optional})
    return template


WORKFLOWS: list[dict[str, Any]] = [
    # (owner or None for the emulator's own account, id, type, name, engine, template, versions)
    dict(owner=None, id="1234567", type="PRIVATE", name="cram-to-bam", engine="WDL",
         template=_required("sample_name", "input_cram", "ref_dict", "ref_fasta", "ref_fasta_index"),
         versions=["v1.0.0", "v1.1.0"]),
    dict(owner=SHARED_OWNER, id="1234567", type="PRIVATE", name="shared-example", engine="WDL",
         template=_required("param1", "param2"), versions=[]),
    dict(owner=None, id="7206765", type="PRIVATE", name="nf-core-scrnaseq", engine="NEXTFLOW",
         template=_required("input", "protocol",
                            optional=("ecr_registry", "gtf", "aligner", "fasta", "skip_emptydrops", "genome")),
         versions=["2.7.1"]),
    dict(owner=None, id="9500764", type="READY2RUN", name="GATK-BP Germline fq2vcf for 30x genome",
         engine="WDL", template=_required("sample_name", "fastq_1", "fastq_2"), versions=[]),
]

# Seeded runs and the ARNs of seeded resources are in this region.
REGION = "us-west-2"

RUN_GROUPS: list[dict[str, Any]] = [dict(id="1234567", name="production", maxRuns=10, maxCpus=1024)]
RUN_CACHES: list[dict[str, Any]] = [dict(id="1234567", name="scrnaseq-cache", cacheBehavior="CACHE_ON_FAILURE",
                   cacheS3Uri="s3://healthomics-output-bucket-demo/run-cache/")]

# The run that `start-run --run-id 3282892` duplicates.
SEED_RUN: dict[str, Any] = dict(
    id="3282892", uuid="5f1c2b3a-0000-4000-8000-000000328289", workflowId="1234567", name="cram-to-bam",
    roleArn="arn:aws:iam::123456789012:role/omics-service-role-serviceRole-W8O1XMPL7QZ",
    outputUri="s3://omics-artifacts-01d6xmpl4e72dd32/workflow-output/", priority=1, storageCapacity=10,
    logLevel="ALL", runGroupId="1234567",
    parameters={
        "sample_name": "NA12878",
        "input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
        "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
        "ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
        "ref_fasta_index": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai",
    },
)

READ_SETS: list[dict[str, Any]] = [dict(sequenceStoreId="1234567890", id="1234567890", name="NA12878", sampleId="NA12878",
                  subjectId="NA12878", fileType="CRAM")]
REFERENCES: list[dict[str, Any]] = [dict(referenceStoreId="1234567890", id="9876543210", name="GRCh38"),
              # the reference the fifth example's parameters file names
              dict(referenceStoreId="1234567890", id="1234567890", name="Homo_sapiens_assembly38")]

# --- The `aws omics start-run` examples of the AWS CLI documentation, verbatim -------------------
# (awscli/examples/omics/start-run.rst). The first and the fifth read `workflow-inputs.json`:
# the first with s3:// inputs, the fifth ("To load source files from AWS HealthOmics") with
# omics:// read-set and reference URIs, which resolve against READ_SETS and REFERENCES above.

WORKFLOW_INPUTS_JSON = """{
    "sample_name": "NA12878",
    "input_cram": "s3://omics-artifacts-01d6xmpl4e72dd32/NA12878.cram",
    "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
    "ref_fasta": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta",
    "ref_fasta_index": "omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.fasta.fai"
}
"""

OMICS_WORKFLOW_INPUTS_JSON = """{
    "sample_name": "NA12878",
    "input_cram": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/readSet/1234567890/source1",
    "ref_dict": "s3://omics-artifacts-01d6xmpl4e72dd32/Homo_sapiens_assembly38.dict",
    "ref_fasta": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/reference/1234567890",
    "ref_fasta_index": "omics://123456789012.storage.us-west-2.amazonaws.com/1234567890/reference/1234567890/index"
}
"""

_RUN_A_WORKFLOW = """aws omics start-run \\
    --workflow-id 1234567 \\
    --role-arn arn:aws:iam::123456789012:role/omics-service-role-serviceRole-W8O1XMPL7QZ \\
    --name 'cram-to-bam' \\
    --output-uri s3://omics-artifacts-01d6xmpl4e72dd32/workflow-output/ \\
    --run-group-id 1234567 \\
    --priority 1 \\
    --storage-capacity 10 \\
    --log-level ALL \\
    --parameters file://workflow-inputs.json"""

# (title, command as printed, the workflow-inputs.json it reads or None)
EXAMPLES = [
    ("To run a workflow", _RUN_A_WORKFLOW, WORKFLOW_INPUTS_JSON),
    ("To run a shared workflow", """aws omics start-run \\
    --workflow-id 1234567 \\
    --workflow-owner-id 123456789012 \\
    --role-arn arn:aws:iam::123456789012:role/HealthOmicsServiceRole \\
    --output-uri s3://your-bucket/results/ \\
    --parameters '{
        "param1": "value1", 
        "param2": "value2"
        }'""", None),  # noqa: W291 (the trailing space is part of the example, as published)
    ("To run a workflow with call caching enabled", """aws omics start-run \\
    --workflow-id 7206765 \\
    --role-arn arn:aws:iam::123456789012:role/HealthOmicsServiceRole \\
    --output-uri s3://healthomics-output-bucket-demo/results/ \\
    --parameters '{
        "input": "s3://healthomics-output-bucket-demo/input/samplesheet.csv",
        "protocol": "10XV3",
        "ecr_registry": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "gtf": "s3://healthomics-output-bucket-demo/reference/genes.gtf",
        "aligner": "star",
        "fasta": "s3://healthomics-output-bucket-demo/reference/genome.fa",
        "skip_emptydrops": "true"
    }' \\
    --cache-id 1234567 \\
    --cache-behavior "CACHE_ALWAYS\"""", None),
    ("To duplicate a run", """aws omics start-run \\
    --role-arn arn:aws:iam::713632817814:role/HealthOmicsServiceRole \\
    --output-uri s3://healthomics-output-bucket-demo/results/ \\
    --run-id 3282892""", None),
    ("To load source files from AWS HealthOmics", _RUN_A_WORKFLOW, OMICS_WORKFLOW_INPUTS_JSON),
]


def example_args(command: str) -> list[str]:
    """An example's arguments after `aws omics start-run`, split as a POSIX shell splits them
    (a backslash at the end of a line continues the command)."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["aws", "omics", "start-run"], command
    return words[3:]

# The tasks each seeded workflow's runs report (ListRunTasks / GetRunTask): name, container
# image (a private ECR copy of a public source image), cpus, memory (GiB), gpus.
ECR = "111122223333.dkr.ecr.us-west-2.amazonaws.com"
TASKS = {
    "cram-to-bam": [("CramToBam", "samtools:1.17", "quay.io/biocontainers/samtools:1.17--h00cdaf9_0", 4, 8, 0),
                    ("ValidateBam", "picard:3.1.0", "quay.io/biocontainers/picard:3.1.0--hdfd78af_0", 2, 4, 0)],
    "nf-core-scrnaseq": [("FASTQC", "fastqc:0.12.1", "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0", 2, 4, 0),
                         ("STAR_ALIGN", "star:2.7.10b", "quay.io/biocontainers/star:2.7.10b--h6b7c446_1", 16, 64, 0),
                         ("MULTIQC", "multiqc:1.19", "quay.io/biocontainers/multiqc:1.19--pyhdfd78af_0", 2, 8, 0)],
}
DEFAULT_TASKS = [("main", "ubuntu:22.04", "docker.io/library/ubuntu:22.04", 2, 4, 0)]
