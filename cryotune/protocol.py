"""Where a trial departs from Cryo-Bench's protocol: the settings cryotune offers beside the
paper's, and the list of departures every trial records (``info["deviations"]``).

Only settings that act on the trial are listed: the neck's rounding for encoders fed through
the ViT neck, Swin taps for GFM-Swin, the precision actually computed in. ``docs/protocol.md``
is the whole comparison, including what cryotune changes for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperSetting:
    """A TrialConfig setting, the value Cryo-Bench's runs used, and why cryotune offers another."""

    name: str
    paper: object
    why: str


PAPER_SETTINGS: dict[str, PaperSetting] = {
    s.name: s
    for s in (
        PaperSetting(
            "val_every",
            5,
            "Cryo-Bench validates every 5 epochs and after the last; validating more often "
            "picks the best checkpoint from more draws",
        ),
        PaperSetting("precision", "fp32", "bf16 autocast roughly halves GPU step time"),
        PaperSetting(
            "neck_pool",
            "floor",
            "ceil keeps the last row and column of odd feature maps and a 1x1 map at 1x1",
        ),
        PaperSetting(
            "swin_taps",
            "merged",
            "the stage outputs give a true stride 4..32 pyramid instead of 8,16,32,32",
        ),
        PaperSetting("view", None, "a requested view instead of the one Cryo-Bench ran"),
    )
}


def deviations(values: dict[str, object], applies: set[str], paper_view: str) -> list[str]:
    """The trial's departures from Cryo-Bench, one line each.

    ``values`` holds the trial's effective values (precision as computed, the view read);
    ``applies`` names the settings that act on this model; ``paper_view`` is the view
    Cryo-Bench ran this model on (or, where it names none, the one it would have chosen).
    """
    paper = {**{k: s.paper for k, s in PAPER_SETTINGS.items()}, "view": paper_view}
    return [
        f"{k}={values[k]} (Cryo-Bench: {paper[k]}; {PAPER_SETTINGS[k].why})"
        for k in PAPER_SETTINGS
        if k in applies and k in values and values[k] != paper[k]
    ]
