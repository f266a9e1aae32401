"""The sections of a study's report, in page order: each is found by its id, in the module of that name.

A study is one run, a sweep, or several of them; its cells (loadgen.report.cells) are drawn by
every section in :data:`SECTIONS` in turn. A section with nothing to show draws "" (and gets no
link in the navigation). ``p`` prefixes every element id, so two studies share one page (--compare).
A section draws figures computed elsewhere: where a concept has its own module in loadgen.report
(``reference``, ``whatif``, ``cluster``, ``failures``), the section of that name only shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadgen.report.cells import Cell
from loadgen.report.page import nav
from loadgen.report.sections.cluster import cluster_section
from loadgen.report.sections.concurrency import concurrency_section
from loadgen.report.sections.detail import detail_section
from loadgen.report.sections.failures import failures_section
from loadgen.report.sections.headline import headline_section
from loadgen.report.sections.heatmap import heatmap_section
from loadgen.report.sections.hotspot import hotspot_section
from loadgen.report.sections.latency import latency_section
from loadgen.report.sections.metadata import metadata_section
from loadgen.report.sections.model import model_section
from loadgen.report.sections.reference import reference_section
from loadgen.report.sections.warnings import warnings_section
from loadgen.report.sections.whatif import whatif_section
from loadgen.report.whatif import WhatIf

__all__ = ["Section", "SECTIONS", "study_sections", "study_nav"]


@dataclass(frozen=True)
class Section:
    """One section of a study's page."""

    #: The element id (after the prefix); ``draw`` is ``<id>_section`` in the module of that name.
    id: str
    #: The navigation link's text.
    link: str
    #: ``draw(cells, p)``, or ``draw(cells, p, whatif)`` with ``with_whatif``: the section's HTML, "" when it has nothing to show.
    draw: Callable[..., str]
    with_whatif: bool = False


SECTIONS: tuple[Section, ...] = (
    Section("headline", "Headline", headline_section),
    Section("warnings", "Warnings", warnings_section),
    Section("hotspot", "Hot spots", hotspot_section),
    Section("concurrency", "Concurrency", concurrency_section),
    Section("heatmap", "Heatmap", heatmap_section),
    Section("model", "Model", model_section),
    Section("whatif", "What if", whatif_section, with_whatif=True),
    Section("reference", "DSQL reference", reference_section),
    Section("cluster", "Cluster counters", cluster_section),
    Section("latency", "Latency", latency_section),
    Section("failures", "Failures by step", failures_section),
    Section("detail", "Over time & hot keys", detail_section),
    Section("metadata", "Metadata", metadata_section),
)


def study_sections(cells: list[Cell], p: str = "", whatif: WhatIf | None = None) -> str:
    """Every section for one set of cells; ``p`` prefixes element ids (for side-by-side pages)."""
    return "".join(s.draw(cells, p, whatif) if s.with_whatif else s.draw(cells, p) for s in SECTIONS)


def study_nav(body: str, p: str = "") -> str:
    """Links to the sections ``body`` holds (those with nothing to show drew nothing)."""
    return nav((f"{p}{s.id}", s.link) for s in SECTIONS if f'id="{p}{s.id}"' in body)
