"""The emulator's seed data: what the AWS CLI documentation's start-run examples need."""

from __future__ import annotations

ACCOUNT = "111122223333"
SHARED_OWNER = "123456789012"
EPOCH = "2026-01-15T09:00:00+00:00"


def _required(*names: str, optional: tuple[str, ...] = ()) -> dict:
    template = {name: {"description": name.replace("_", " "), "optional": False} for name in names}
    template.update({name: {"description": name.replace("_", " "), "optional": True} for name in optional})
    return template


WORKFLOWS = [
    # (owner or None for the emulator's own account, id, type, name, engine, template, versions)
    dict(owner=None, id="1234567", type="PRIVATE", name="cram-to-bam", engine="WDL",
         template=_required("sample_name", "input_cram", "ref_dict", "ref_fasta", "ref_fasta_index"),
         versions=["v1.0.0", "v1.1.0"]),
    dict(owner=SHARED_OWNER, id="1234567", type="PRIVATE", name="shared-example", engine="WDL",
         template=_required("param1", "param2"), versions=[]),
    dict(owner=None, id="7206765", type="PRIVATE", name="nf-core-scrnaseq", engine="NEXTFLOW",
         template=_required("input", "protocol", optional=("aligner", "skip_emptydrops", "genome")),
         versions=["2.7.1"]),
    dict(owner=None, id="9500764", type="READY2RUN", name="GATK-BP Germline fq2vcf for 30x genome",
         engine="WDL", template=_required("sample_name", "fastq_1", "fastq_2"), versions=[]),
]

# Seeded runs and the ARNs of seeded resources are in this region.
REGION = "us-west-2"

RUN_GROUPS = [dict(id="1234567", name="production", maxRuns=10, maxCpus=1024)]
RUN_CACHES = [dict(id="1234567", name="scrnaseq-cache", cacheBehavior="CACHE_ON_FAILURE",
                   cacheS3Uri="s3://healthomics-output-bucket-demo/run-cache/")]

# The run that `start-run --run-id 3282892` duplicates.
SEED_RUN = dict(
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

READ_SETS = [dict(sequenceStoreId="1234567890", id="1234567890", name="NA12878", sampleId="NA12878",
                  subjectId="NA12878", fileType="CRAM")]
REFERENCES = [dict(referenceStoreId="1234567890", id="9876543210", name="GRCh38")]

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
