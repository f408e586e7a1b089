"""``massdyn audit``: what each revision of a series serves, from file listings alone."""

from __future__ import annotations

from dataclasses import dataclass

from massdyn.options import opt


@dataclass
class AuditCommand:
    """Audit checkpoint series before downloading them.

    SOURCE is a Hub repo with step<N> branches or a folder of checkpoint folders; several
    may be given. Lists every revision's weight files with their sizes and LFS sha256 from
    the Hub's tree API (no weight is downloaded; local folders are hashed in place) and
    says per revision: ok, duplicate (of an earlier revision, byte for byte), shard
    duplicate, mixed formats, size anomaly, or missing (against the schedule a suite file
    declares, Pythia's for Pythia repos). Writes the table to OUT (.csv or
    .parquet) and prints a summary per series with the bytes the duplicates would cost.
    """

    source: list[str] = opt(
        help="Hub repo id(s), checkpoint series folder(s), a suite file or a shipped suite's "
        "name (pythia, polypythias, ...)",
        positional=True,
    )
    out: str = opt("audit.csv", "table to write (.csv or .parquet)")

    def run(self) -> int:
        """Audit every series, write one table, print the summaries."""
        import pandas as pd

        from massdyn.io import write_table
        from massdyn.tracker.audit import audit, audit_summary
        from massdyn.tracker.sources import open_source
        from massdyn.tracker.suite import expand_suites

        tables, told = [], set()
        for spec, facts in expand_suites(self.source):
            if facts.known_faults and facts.suite not in told:
                told.add(facts.suite)
                print(f"{facts.suite}: known faults: " + "; ".join(facts.known_faults))
            table = audit(open_source(spec), expected=facts.schedule)
            print(audit_summary(table))
            if facts.schedule is None:
                print(
                    "  no declared schedule: missing revisions are not judged (declare one "
                    'as "schedule" in a suite file, e.g. {"every": 1000})'
                )
            tables.append(table)
        out = write_table(pd.concat(tables, ignore_index=True), self.out)
        print(f"wrote {out}")
        return 0
