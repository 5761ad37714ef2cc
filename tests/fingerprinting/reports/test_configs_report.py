"""The config dashboard over hand-made marts in an in-memory DuckDB (values worked out by hand)."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pytest

from fingerprinting.reports import configs
from fingerprinting.reports.configs import load_config_data, render_config_dashboard, spring_layout

# Scored drift of six edges: 0, 0.05, 0.25, 0.3, 0.5, 0.6 -> median (0.25 + 0.3) / 2 = 0.275,
# one of six identical (16.7%); the seventh edge lacks its parent's config (NULL drift).
EDGES = [
    ("p1", "c1", "finetune", "fam_a", "fam_a", True, 0.0),
    ("p1", "c2", "finetune", "fam_a", "fam_a", True, 0.05),
    ("p1", "c3", "adapter", "fam_a", "fam_a", True, 0.25),
    ("p2", "c4", "finetune", "fam_b", "fam_b", True, 0.3),
    ("p2", "c5", "merge", "fam_a", "fam_b", False, 0.5),
    ("p2", "c6", "quantized", "fam_b", "fam_b", True, 0.6),
    ("p9", "c7", "finetune", "fam_b", "fam_b", True, None),
]
MARTS_SQL = {
    "config_drift_edges": """create table config_drift_edges as select * from (values {edges}) t(parent_id, child_id,
        relation, parent_family, child_family, same_family, gower_standard) cross join
        (select 1 as depth, true as has_parent_config, true as has_child_config, 0.0 as gower_max, 5 as n_compared,
                ['hidden_size']::varchar[] as changed_fields, 1 as n_changed)""",
    "config_drift_summary": """create table config_drift_summary as select * from (values
        ('overall', 'all', 6, 5, 0.2833, 0.275, 0.1, 0.45, 0.1667, 0.3),
        ('relation', 'finetune', 3, 2, 0.1167, 0.05, 0.025, 0.175, 0.3333, 0.2),
        ('relation', 'adapter', 1, 1, 0.25, 0.25, 0.25, 0.25, 0.0, 0.3),
        ('family', 'fam_a', 3, 2, 0.1, 0.05, 0.025, 0.15, 0.3333, 0.1),
        ('family', 'fam_b', 3, 3, 0.4667, 0.5, 0.4, 0.55, 0.0, 0.5),
        ('within_vs_between', 'within', 5, 4, 0.24, 0.25, 0.05, 0.3, 0.2, 0.3),
        ('baseline', 'sibling', 10, 8, 0.2, 0.15, 0.05, 0.3, 0.2, null),
        ('baseline', 'random_pair', 100, 100, 0.6, 0.62, 0.5, 0.75, 0.0, null))
        t(group_kind, group_value, n_edges, n_with_drift, mean_drift, median_drift, p25_drift, p75_drift,
          share_zero_drift, mean_drift_max)""",
    "config_field_mutation": """create table config_field_mutation as select * from (values
        ('hidden_size', 'all', 6, 2, 0.3333, 0.0968, 0.7), ('vocab_size', 'all', 6, 1, 0.1667, 0.03, 0.56),
        ('hidden_size', 'finetune', 3, 1, 0.3333, 0.06, 0.79))
        t(field, relation, n_edges_compared, n_changed, share_changed, ci_low, ci_high)""",
    "trait_mutation": """create table trait_mutation as select * from (values ('license', 'all', 4, 0.25, 0.5),
        ('languages', 'all', 3, 0.1111, 0.3333)) t(trait, relation, n_edges, mean_mutation_rate, share_changed)""",
    "stg_config_embedding": """create table stg_config_embedding as select * from (values
        ('p1', 0.0, 0.0, null::double, null::double, 0), ('c1', 0.1, 0.0, null, null, 0),
        ('p2', 1.0, 1.0, null, null, 1), ('c4', 1.1, 0.9, null, null, 1))
        t(model_id, pca_x, pca_y, mds_x, mds_y, cluster)""",
    "config_similarity_graph": """create table config_similarity_graph as select * from (values
        ('c1', 'p1', 'gower', 'median', 0.0), ('c1', 'c2', 'gower', 'median', 0.05),
        ('c4', 'p2', 'gower', 'median', 0.1), ('c1', 'p1', 'l1', 'median', 0.0))
        t(model_a, model_b, metric, variant, distance)""",
    "config_graph_nodes": """create table config_graph_nodes as select * from (values
        ('p1', 'gower', 'median', 1, 0, 3), ('c1', 'gower', 'median', 2, 0, 3), ('c2', 'gower', 'median', 1, 0, 3),
        ('p2', 'gower', 'median', 1, 1, 2), ('c4', 'gower', 'median', 1, 1, 2))
        t(model_id, metric, variant, degree, component_id, component_size)""",
    "config_neighbors": """create table config_neighbors as select * from (values
        ('c1', 'p1', 'gower', 1, 0.0, 1.0, 'fam_a', 'fam_a', 'llama', 'llama', 'parent'),
        ('c1', 'c2', 'gower', 2, 0.05, 0.95, 'fam_a', 'fam_a', 'llama', 'llama', 'sibling'),
        ('c2', 'c1', 'gower', 1, 0.05, 0.95, 'fam_a', 'fam_a', 'llama', 'llama', 'sibling'),
        ('c4', 'p2', 'gower', 1, 0.1, 0.9, 'fam_b', 'fam_b', 'gpt2', 'gpt2', 'parent'),
        ('p2', 'zz-only-in-l1', 'l1', 1, 3.0, 0.25, 'fam_b', null, 'gpt2', 'bert', null))
        t(model_id, neighbor_id, metric, rank, distance, similarity, model_family, neighbor_family, model_arch,
          neighbor_arch, relation)""",
    "architecture_duplicates": """create table architecture_duplicates as select * from (values
        ('config_hash', 'h1', 3, ['p1', 'c1', 'c2'], 1, ['llama'])) t(match_kind, group_key, n_models, model_ids,
        n_families, archs)""",
    "config_validation_summary": """create table config_validation_summary as select * from (values
        ('catalogue', 'num_attention_heads', 15, 12, 'catalogue/clap', '[1, 2, 4, 8]', 'a list, not one number'))
        t(source, field, n_issues, n_models, example_model_id, example_raw_value, example_message)""",
    "stg_config_phylogeny": """create table stg_config_phylogeny as select * from (values
        ('registered', 'neighbour_recovery', 0.625, 'edges recovered'),
        ('registered', 'adjusted_rand_index', 0.4321, 'clusters vs families'))
        t(population, statistic, value, detail)""",
    "stg_models": """create table stg_models as select * from (values
        ('p1', 'hf://p1', 'fam_a', 'Base', 'p1', ''), ('c1', 'hf://c1', 'fam_a', 'Finetune', 'c1', ''),
        ('c2', 'hf://c2', 'fam_a', 'Finetune', 'c2', ''), ('p2', 'hf://p2', 'fam_b', 'Base', 'p2', ''),
        ('c4', 'hf://c4', 'fam_b', 'Finetune', 'c4', '')) t(model_id, source, family, model_type, display_name, arch)""",
    "stg_model_configs": """create table stg_model_configs as select * from (values
        ('p1', 'lineage', 'h1', 'llama', 4096), ('c1', 'lineage', 'h1', 'llama', 4096),
        ('c2', 'lineage', 'h1', 'llama', 4096), ('p2', 'lineage', 'h2', 'gpt2', 768),
        ('c4', 'lineage', 'h3', 'gpt2', 768)) t(model_id, source, config_hash, model_type, hidden_size)""",
}


def make_marts(con, skip: tuple[str, ...] = ()) -> None:
    """Create the hand-made marts (all but ``skip``) in an open DuckDB connection."""
    def lit(v):
        return "null" if v is None else repr(v).lower() if isinstance(v, bool) else repr(v)

    edges = ", ".join("(" + ", ".join(lit(v) for v in e) + ")" for e in EDGES)
    for name, sql in MARTS_SQL.items():
        if name not in skip:
            con.execute(sql.format(edges=edges))


@pytest.fixture
def con():
    c = duckdb.connect()
    make_marts(c)
    yield c
    c.close()


def test_load_reads_the_hand_made_marts(con):
    d = load_config_data(con)
    assert d.missing == {}
    assert d.n_configs == 5 and d.n_edges == 7
    assert float(np.median(d.drift["gower_standard"])) == pytest.approx(0.275)
    assert sorted(d.drift["same_family"].tolist()) == [False] + [True] * 5
    # largest gower/median component: p1, c1, c2 joined by two edges; architecture from the config
    g = d.graph
    assert sorted(g["ids"].tolist()) == ["c1", "c2", "p1"] and len(g["i"]) == 2
    assert g["component_size"] == 3 and g["n_components"] == 2
    assert set(g["arch"].tolist()) == {"llama"} and set(g["family"].tolist()) == {"fam_a"}
    # only the chosen metric's neighbours; 3 models' nearest: 2 parents, 1 sibling
    assert {r["neighbor_id"] for r in d.neighbors} == {"p1", "c2", "c1", "p2"}
    rel = {r["relation"]: (r["n_models"], r["share"]) for r in d.nearest_relations}
    assert rel["parent"][0] == 2 and rel["sibling"][0] == 1 and rel["parent"][1] == pytest.approx(2 / 3)


def test_dashboard_shows_every_section_and_the_numbers(con, tmp_path):
    paths = render_config_dashboard(con, tmp_path / "out")
    page = (tmp_path / "out" / "config_dashboard.html").read_text()
    assert paths == {"dashboard": str(tmp_path / "out" / "config_dashboard.html")}
    for sid in ("drift", "within-between", "drift-groups", "drift-summary", "drift-cdf", "fields", "traits",
                "embedding", "graph", "neighbors", "duplicates", "validation", "phylogeny"):
        assert f'<section id="{sid}">' in page, sid
    assert 'id="embedding-mds"' not in page  # no MDS coordinates in this population
    assert "median 0.2750" in page and "16.7% have identical features" in page
    assert "(6 of 7 edges)" in page and "5 configs" in page and "7 lineage edges (6 with both configs)" in page
    assert "baseline: sibling" in page and "baseline: random_pair" in page
    assert "Here 17% of parent → child edges have identical config features" in page
    assert "cannot tell a fine-tune from its parent" in page
    assert "<td>license</td>" in page and '<td class="n">0.2500</td>' in page
    assert "<td>adjusted rand index</td>" in page and '<td class="n">0.4321</td>' in page
    assert "p1, c1, c2" in page and "a list, not one number" in page
    assert "zz-only-in-l1" not in page  # neighbours of another metric
    assert "not built" not in page and "could not be read" not in page
    # offline: plotly inlined exactly once, no remote script
    assert page.count("plotly.js v") == 1 and not re.search(r"<script[^>]*\bsrc=", page)
    assert len(page) < 15_000_000


def test_other_metric(con, tmp_path):
    page = configs.config_dashboard_html(load_config_data(con, metric="l1"))
    assert "zz-only-in-l1" in page and "metric <b>l1</b>" in page
    assert "Similarity graph: no graph for metric &#x27;l1&#x27; (median variant)." in page  # no l1 nodes


def test_missing_marts_are_named_not_fatal(tmp_path):
    c = duckdb.connect()
    make_marts(c, skip=("config_field_mutation", "trait_mutation", "config_graph_nodes", "config_drift_summary",
                        "stg_config_phylogeny", "config_validation_summary"))
    render_config_dashboard(c, tmp_path)
    page = (tmp_path / "config_dashboard.html").read_text()
    assert "Field mutation: not built: config_field_mutation is not in the warehouse yet" in page
    assert "Similarity graph: not built: config_graph_nodes" in page
    assert "not built yet: config_drift_summary, config_field_mutation, config_graph_nodes" in page
    assert "median 0.2750" in page  # what is built still shows
    assert "No baselines" in page and "Phylogeny from configs: not built" in page
    # an empty warehouse renders too
    empty = configs.config_dashboard_html(load_config_data(duckdb.connect()))
    assert empty.count("not built") >= 10 and "<h1>Fingerprint Lake: config dashboard</h1>" in empty


def test_a_mart_with_other_columns_is_reported(tmp_path):
    c = duckdb.connect()
    make_marts(c, skip=("trait_mutation",))
    c.execute("create table trait_mutation as select 'license' as trait")  # wrong shape
    c.execute("drop table config_neighbors")
    c.execute("create table config_neighbors as select 'a' as model_id")
    d = load_config_data(c)
    assert d.missing["neighbors"].startswith("could not be read: BinderException")
    html_ = configs.config_dashboard_html(d)
    assert "Nearest config neighbours (gower): could not be read" in html_
    assert "Trait mutation: could not be read: BinderException" in html_
    assert "median 0.2750" in html_  # the rest still shows


def test_table_rows_are_capped(con, monkeypatch):
    monkeypatch.setattr(configs, "MAX_TABLE_ROWS", 2)
    page = configs.config_dashboard_html(load_config_data(con))
    assert "showing the first 2 of 4 rows" in page


def test_spring_layout_pulls_linked_nodes_together():
    # two triangles joined by nothing: within-triangle distances beat between-triangle ones
    i = np.array([0, 1, 2, 3, 4, 5])
    j = np.array([1, 2, 0, 4, 5, 3])
    pos = spring_layout(6, i, j)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    within = [d[0, 1], d[1, 2], d[0, 2], d[3, 4], d[4, 5], d[3, 5]]
    between = [d[a, b] for a in range(3) for b in range(3, 6)]
    assert max(within) < min(between)
    assert np.array_equal(pos, spring_layout(6, i, j))  # deterministic
