"""The examples of the README and its docs/ pages run as written; their links resolve."""
import json
import re

import torch
from click.testing import CliRunner

from ferbench.cli import main

from conftest import REPO


def _block(page: str, lang: str) -> str:
    """The first ``lang`` code block of a documentation page."""
    return re.search(rf"```{lang}\n(.*?)```", (REPO / page).read_text(), re.S).group(1)


class _Net(torch.nn.Module):
    """A stand-in for 'a model you trained elsewhere': 3 x 64 x 64 in, 7 logits out."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.fc = torch.nn.Linear(4 * 4 * 4, 7)

    def forward(self, x):
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4).flatten(1))


def test_compare_your_own_model_example_validates_and_runs(tmp_path):
    suite = tmp_path / "my_suite.yaml"
    suite.write_text(_block("docs/your-model.md", "yaml"))
    # exported exactly as the README shows
    program = torch.export.export(_Net().eval(), (torch.rand(2, 3, 64, 64),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "my_fer_net.pt2")
    r = CliRunner().invoke(main, ["validate", str(suite)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--epochs", "1",
                                  "--limit", "20"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "res" / "mine-epochs1-limit20"
    res = json.loads((run / "mine.my_net/result.json").read_text())
    assert res["status"] == "ok" and res["load"]["format"] == "export" and res["load"]["outputs"] == "logits"
    assert res["input"].startswith("64x64x3")
    assert "| my_net (loaded)" in (run / "report.md").read_text()


def test_the_readme_is_a_landing_page_whose_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 16 * 1024
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
