"""The sections of a study's report, in page order: each is found by its id, in the module of that name.

A study is one run, a sweep, or several of them; its cells (loadgen.report.cells) are drawn by
every section in :data:`SECTIONS` in turn. A section with nothing to show draws "" (and gets no
link in the navigation). ``p`` prefixes every element id, so two studies share one page (--compare).
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

#: Draws one section of a study: its cells, the element ids' prefix, the what-if prediction (if made).
Draw = Callable[[list[Cell], str, WhatIf | None], str]


@dataclass(frozen=True)
class Section:
    #: The element id (after the prefix) and the name of the module that draws it.
    id: str
    #: The navigation link's text.
    link: str
    draw: Draw


def _of_cells(draw: Callable[[list[Cell], str], str]) -> Draw:
    return lambda cells, p, whatif: draw(cells, p)


SECTIONS: tuple[Section, ...] = (
    Section("headline", "Headline", _of_cells(headline_section)),
    Section("warnings", "Warnings", _of_cells(warnings_section)),
    Section("hotspot", "Hot spots", _of_cells(hotspot_section)),
    Section("concurrency", "Concurrency", _of_cells(concurrency_section)),
    Section("heatmap", "Heatmap", _of_cells(heatmap_section)),
    Section("model", "Model", _of_cells(model_section)),
    Section("whatif", "What if", lambda cells, p, whatif: whatif_section(whatif, p)),
    Section("reference", "DSQL reference", _of_cells(reference_section)),
    Section("cluster", "Cluster counters", _of_cells(cluster_section)),
    Section("latency", "Latency", _of_cells(latency_section)),
    Section("failures", "Failures by step", _of_cells(failures_section)),
    Section("detail", "Over time & hot keys", _of_cells(detail_section)),
    Section("metadata", "Metadata", _of_cells(metadata_section)),
)


def study_sections(cells: list[Cell], p: str = "", whatif: WhatIf | None = None) -> str:
    """Every section for one set of cells; ``p`` prefixes element ids (for side-by-side pages)."""
    return "".join(s.draw(cells, p, whatif) for s in SECTIONS)


def study_nav(body: str, p: str = "") -> str:
    """Links to the sections ``body`` holds (those with nothing to show drew nothing)."""
    return nav((f"{p}{s.id}", s.link) for s in SECTIONS if f'id="{p}{s.id}"' in body)
