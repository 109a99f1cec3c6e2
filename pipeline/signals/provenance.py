"""What a signals result was computed with: kernel version, parameters, signal rule (JSON)."""

from __future__ import annotations

import json
from typing import Any

from udx.kernels import KERNEL_VERSION, SIGNAL_RULE, SIGNAL_RULE_TEXT, Params
from udx.kernels.config import LM_N_DEFINITION

SPEC_VERSION = "statistics.md v1"
PARQUET_METADATA_KEY = b"microstructure.provenance"


def provenance(params: Params | None = None) -> dict[str, Any]:
    """Return the provenance record of results computed with ``params``.

    Parameters
    ----------
    params
        The parameters used; the defaults when omitted.

    Returns
    -------
    dict
        ``kernel_version``, ``spec``, ``params`` (every field of :class:`Params`) and
        ``signal_rule`` (name, text, K, alpha, the n of the Gumbel threshold).
    """
    p = params or Params()
    return {
        "kernel_version": KERNEL_VERSION,
        "spec": SPEC_VERSION,
        "params": p.to_dict(),
        "signal_rule": {
            "name": SIGNAL_RULE,
            "rule": SIGNAL_RULE_TEXT,
            "K": p.lm_window,
            "alpha": p.alpha,
            "n": LM_N_DEFINITION,
        },
    }


def provenance_json(params: Params | None = None) -> str:
    """Return :func:`provenance` as canonical JSON (sorted keys), for storage."""
    return json.dumps(provenance(params), sort_keys=True)
