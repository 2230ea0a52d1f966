"""Typed values between tasks: a pydantic model in, a file between tasks, a dataclass out.

flytelike run examples/models.py main --config '{"rows": 5, "scale": 2.0}'
"""

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

import flytelike as fl

env = fl.TaskEnvironment(name="models")


class Config(BaseModel):
    rows: int = Field(default=10, ge=1)
    scale: float = 1.0


@dataclass
class Summary:
    rows: int
    total: float
    source: str


@env.task
async def write_table(config: Config) -> fl.File:
    """Writes a CSV of `rows` scaled values and returns it as a file."""
    path = Path(tempfile.mkdtemp()) / "table.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["i", "value"])
        for i in range(config.rows):
            out.writerow([i, i * config.scale])
    return fl.File(str(path), format="csv")


@env.task
async def summarize(table: fl.File) -> Summary:
    with open(table) as f:
        values = [float(row["value"]) for row in csv.DictReader(f)]
    return Summary(rows=len(values), total=sum(values), source=table.name)


DEFAULT = Config()


@env.task
async def main(config: Config = DEFAULT) -> Summary:
    return await summarize(await write_table(config))


if __name__ == "__main__":
    print(fl.run(main, config=Config(rows=5, scale=2.0)).outputs)
