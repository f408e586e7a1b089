"""``massdyn export``: walk results as a Hugging Face dataset folder."""

from __future__ import annotations

from dataclasses import dataclass

from massdyn.options import opt


@dataclass
class ExportCommand:
    """Write walk folders' tables as Parquet with a dataset card (see massdyn.export).

    The folder loads with ``datasets.load_dataset(OUT, "measurements")`` and is published
    with ``hf upload USER/NAME OUT --repo-type dataset``.
    """

    folders: list[str] = opt(help="walk output folder(s) (walk --out)", positional=True)
    out: str | None = opt(None, "a new or empty folder for the dataset (required)")
    params: str | None = opt(None, "a massdyn fit parameters table to include")
    license: str = opt("cc-by-4.0", "the dataset card's license")
    title: str | None = opt(None, "the dataset card's title (default: the models' names)")

    def run(self) -> int:
        """Export and say what was written."""
        from massdyn.export import export_dataset

        if not self.folders:
            raise ValueError("give the walk folder(s) to export (the --out of each walk)")
        if not self.out:
            raise ValueError("--out is required: a new folder for the dataset")
        done = export_dataset(self.folders, self.out, self.params, self.license, self.title)
        for name, n in done.rows.items():
            print(f"{name}: {n:,} rows")
        print(f"wrote {done.out} ({len(done.models)} model(s)); publish it with:")
        print(f"  hf upload USER/NAME {done.out} --repo-type dataset")
        return 0
