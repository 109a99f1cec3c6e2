"""Signal schedules: hourly provisional refreshes of today, a daily final run after the close."""

# No `from __future__ import annotations`: Dagster reads the parameter annotations
# (config and resource types) at definition time.

import dagster as dg

from assets.jobs import signals_job
from assets.partitions import is_trading_day
from pipeline.nytime import NEW_YORK

HOURLY_CRON = "5 10-17 * * 1-5"  # minute 5 of 10:00-17:00 New York, weekdays
FINAL_CRON = "45 16 * * 1-5"  # after the close plus the finality grace (16:15)


def _today_request(
    context: dg.ScheduleEvaluationContext, kind: str
) -> dg.RunRequest | dg.SkipReason:
    day = context.scheduled_execution_time.astimezone(NEW_YORK).date()
    if not is_trading_day(day):
        return dg.SkipReason(f"{day} is not an NYSE trading day")
    return dg.RunRequest(
        run_key=f"signals:{day.isoformat()}:{kind}:{context.scheduled_execution_time:%H%M}",
        partition_key=day.isoformat(),
        tags={"signals/kind": kind},
    )


@dg.schedule(
    job=signals_job,
    cron_schedule=HOURLY_CRON,
    execution_timezone=NEW_YORK.key,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def signals_hourly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Recompute today's partition each hour of the session (provisional until final)."""
    return _today_request(context, "hourly")


@dg.schedule(
    job=signals_job,
    cron_schedule=FINAL_CRON,
    execution_timezone=NEW_YORK.key,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def signals_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Recompute today's partition after the close; it is final once ingest passed close + grace."""
    return _today_request(context, "final")
