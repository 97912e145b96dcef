"""``python -m interp jobs …``: submit, list, follow, stop and resume fine-tuning / evaluation jobs."""

from __future__ import annotations

import argparse
from dataclasses import fields

from interp.cli.registry import command
from interp.configs import add_config_args, config_from_args
from interp.interpreters.training import FinetuneConfig
from interp.jobs import control as jobs
from interp.jobs.spec import EvaluateJobConfig, JobSpec
from interp.settings import Paths

JOB_OPTIONS_SKIP = ("kind", "finetune", "evaluate")


def _spec_options(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in fields(JobSpec)
            if f.name not in JOB_OPTIONS_SKIP and hasattr(args, f.name)}


def _submitted(job_id: str, args: argparse.Namespace, paths: Paths) -> int:
    print(f"submitted {job_id}")
    if not args.wait:
        return 0
    status = jobs.wait(job_id, paths, timeout=float("inf"), poll_s=5)
    print(jobs.logs(job_id, paths)[-2000:])
    print(f"{job_id}: {status}")
    return 0 if status == "succeeded" else 1


@command("jobs finetune")
def cmd_jobs_finetune(args: argparse.Namespace, paths: Paths) -> int:
    cfg = config_from_args(FinetuneConfig, args, out="")
    spec = JobSpec(kind="finetune", finetune=cfg, **_spec_options(args))
    return _submitted(jobs.submit(spec, paths), args, paths)


@command("jobs evaluate")
def cmd_jobs_evaluate(args: argparse.Namespace, paths: Paths) -> int:
    cfg = config_from_args(EvaluateJobConfig, args)
    spec = JobSpec(kind="evaluate", evaluate=cfg, **_spec_options(args))
    return _submitted(jobs.submit(spec, paths), args, paths)


@command("jobs list")
def cmd_jobs_list(args: argparse.Namespace, paths: Paths) -> int:
    views = jobs.list_views(paths)
    if not views:
        print("no jobs yet: `python -m interp jobs finetune --help`")
    for v in views:
        eta = f"eta {v.eta_s / 60:.0f} min" if v.eta_s else ""
        loss = v.last("loss")
        print(f"{v.id:<36} {v.spec.kind:<8} {v.backend:<5} {v.status:<9} step {v.step or 0:<5} "
              f"{'' if loss is None else f'loss {loss:.3f}':<11} {v.elapsed_s / 60:6.1f} min {eta}")
    return 0


@command("jobs logs")
def cmd_jobs_logs(args: argparse.Namespace, paths: Paths) -> int:
    jobs.refresh(args.job, paths)
    print(jobs.logs(args.job, paths)[-args.chars:])
    return 0


@command("jobs stop")
def cmd_jobs_stop(args: argparse.Namespace, paths: Paths) -> int:
    jobs.stop(args.job, paths)
    print(f"{args.job}: stopped")
    return 0


@command("jobs resume")
def cmd_jobs_resume(args: argparse.Namespace, paths: Paths) -> int:
    return _submitted(jobs.resume(args.job, paths), args, paths)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``jobs`` command group under the main parser's subcommands."""
    group = sub.add_parser("jobs", help="run fine-tuning / evaluation as jobs (local, or a Ray cluster)"
                           ).add_subparsers(dest="jobs_cmd", required=True, metavar="ACTION")
    p = group.add_parser("finetune", help="submit a fine-tuning job (runs/<name>, or <storage>/<name>)")
    add_config_args(p, FinetuneConfig, skip=("out", "sync_to"))
    add_config_args(p, JobSpec, skip=JOB_OPTIONS_SKIP)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.set_defaults(cmd="jobs finetune")
    p = group.add_parser("evaluate", help="submit an evaluation job for a run (Table 1 metrics into the store)")
    add_config_args(p, EvaluateJobConfig)
    add_config_args(p, JobSpec, skip=JOB_OPTIONS_SKIP)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.set_defaults(cmd="jobs evaluate")
    group.add_parser("list", help="jobs with status, step, loss, elapsed time and ETA").set_defaults(cmd="jobs list")
    for action, text in (("logs", "the tail of a job's log"), ("stop", "stop a queued or running job"),
                         ("resume", "restart a failed or stopped job (fine-tuning resumes from its checkpoint)")):
        p = group.add_parser(action, help=text)
        p.add_argument("job", help="job id (see `jobs list`)")
        if action == "logs":
            p.add_argument("--chars", type=int, default=4000, help="characters from the end")
        if action == "resume":
            p.add_argument("--wait", action="store_true", help="follow the job until it ends")
        p.set_defaults(cmd=f"jobs {action}")
