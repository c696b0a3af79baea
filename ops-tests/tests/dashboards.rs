//! `dashboards/`: every dashboard imports by hand and by provisioning:
//! unique uid and panel ids, grid positions inside Grafana's 24 columns with
//! no two panels overlapping, a Prometheus datasource variable that every
//! panel, query, annotation and query variable uses, and an instance
//! variable. That every query returns data from the real daemons is
//! `lab.rs`'s part.

use std::collections::BTreeSet;

use ops_tests::{dashboards, read, Dashboard};
use serde_json::Value;

const DATASOURCE: &str = "${datasource}";

fn uses_the_datasource_variable(value: &Value) -> bool {
    value["datasource"]["uid"].as_str() == Some(DATASOURCE)
        && value["datasource"]["type"].as_str() == Some("prometheus")
}

#[test]
fn the_three_views_of_the_issue_are_there_with_unique_uids() {
    let boards = dashboards();
    let uids: BTreeSet<&str> = boards
        .iter()
        .map(|d| d.json["uid"].as_str().expect("uid"))
        .collect();
    assert_eq!(uids.len(), boards.len(), "two dashboards share a uid");
    for uid in ["ipvs-overview", "ipvs-service", "ipvs-checker"] {
        assert!(uids.contains(uid), "no dashboard {uid}");
    }
}

#[test]
fn panel_ids_are_unique() {
    for board in dashboards() {
        let mut seen = BTreeSet::new();
        for panel in board.panels() {
            let id = panel["id"].as_i64().expect("panel id");
            assert!(seen.insert(id), "{}: panel id {id} twice", board.file);
        }
    }
}

struct Rect {
    title: String,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

fn grid(board: &Dashboard) -> Vec<Rect> {
    board
        .panels()
        .iter()
        .map(|panel| {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            let pos = &panel["gridPos"];
            let get = |k: &str| {
                pos[k]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{}: {title:?} has no gridPos.{k}", board.file))
            };
            Rect {
                x: get("x"),
                y: get("y"),
                w: get("w"),
                h: get("h"),
                title,
            }
        })
        .collect()
}

#[test]
fn grid_positions_fit_24_columns_and_do_not_overlap() {
    for board in dashboards() {
        let rects = grid(&board);
        for r in &rects {
            assert!(
                r.x >= 0 && r.y >= 0 && r.w >= 1 && r.h >= 1 && r.x + r.w <= 24,
                "{}: {:?} at x={} y={} w={} h={}",
                board.file,
                r.title,
                r.x,
                r.y,
                r.w,
                r.h
            );
        }
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                let apart =
                    a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                assert!(
                    apart,
                    "{}: {:?} overlaps {:?}",
                    board.file, a.title, b.title
                );
            }
        }
    }
}

#[test]
fn every_panel_query_annotation_and_variable_uses_the_datasource_variable() {
    for board in dashboards() {
        let variables = board.variables();
        let datasource = variables
            .iter()
            .find(|v| v.name == "datasource")
            .unwrap_or_else(|| panic!("{}: no datasource variable", board.file));
        assert_eq!(datasource.kind, "datasource", "{}", board.file);
        assert_eq!(
            datasource.query.as_deref(),
            Some("prometheus"),
            "{}: the datasource variable lists Prometheus datasources",
            board.file
        );
        assert!(
            variables.iter().any(|v| v.name == "instance"),
            "{}: no instance variable",
            board.file
        );
        for panel in board.panels() {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(
                uses_the_datasource_variable(panel),
                "{}: panel {title:?} does not use {DATASOURCE}",
                board.file
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "{}: panel {title:?} has no query",
                board.file
            );
            for target in targets {
                assert!(
                    uses_the_datasource_variable(target),
                    "{}: a query of {title:?} does not use {DATASOURCE}",
                    board.file
                );
            }
        }
        for annotation in board.annotations() {
            assert!(
                uses_the_datasource_variable(annotation),
                "{}: annotation {:?} does not use {DATASOURCE}",
                board.file,
                annotation["name"]
            );
        }
        for variable in board.json["templating"]["list"].as_array().expect("list") {
            if variable["type"] == "query" {
                assert!(
                    uses_the_datasource_variable(variable),
                    "{}: variable {:?} does not use {DATASOURCE}",
                    board.file,
                    variable["name"]
                );
            }
        }
    }
}

#[test]
fn the_service_view_has_service_variables_and_the_checker_view_weight_change_annotations() {
    let boards = dashboards();
    let by_uid = |uid: &str| {
        boards
            .iter()
            .find(|d| d.json["uid"] == uid)
            .unwrap_or_else(|| panic!("no dashboard {uid}"))
    };
    let service: Vec<String> = by_uid("ipvs-service")
        .variables()
        .into_iter()
        .map(|v| v.name)
        .collect();
    for name in ["vip", "port", "mark"] {
        assert!(
            service.iter().any(|n| n == name),
            "ipvs-service: no {name} variable"
        );
    }
    let checker = by_uid("ipvs-checker");
    assert!(
        checker.annotations().iter().any(|a| a["expr"]
            .as_str()
            .is_some_and(|e| e.contains("ipvs_checker_weight_changes_total"))),
        "the checker view has no weight-change annotations"
    );
    let phases = checker.queries().into_iter().any(|q| {
        q.expr
            .contains("ipvs_checker_probe_duration_seconds_bucket")
            && q.expr.contains("by (phase, le)")
    });
    assert!(phases, "the checker view has no latency by phase");
}

#[test]
fn the_provisioning_files_point_grafana_at_the_dashboards() {
    let dashboards: serde_yaml::Value =
        serde_yaml::from_str(&read("dashboards/provisioning/dashboards/ipvs.yml")).expect("YAML");
    assert_eq!(dashboards["apiVersion"].as_i64(), Some(1));
    let provider = &dashboards["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert!(provider["options"]["path"]
        .as_str()
        .is_some_and(|p| p.starts_with('/')));
    let datasources: serde_yaml::Value =
        serde_yaml::from_str(&read("dashboards/provisioning/datasources/prometheus.yml"))
            .expect("YAML");
    assert_eq!(
        datasources["datasources"][0]["type"].as_str(),
        Some("prometheus")
    );
}

#[test]
fn range_selectors_span_more_than_one_step() {
    // A range of `$__interval` is one query step: consecutive windows
    // only touch, and a change whose two samples fall in neighbouring
    // windows is seen by neither (a weight-change annotation that came
    // and went with the scrape timing). `$__rate_interval` is at least four
    // scrape intervals, so the windows overlap.
    for board in dashboards() {
        for query in board.queries() {
            assert!(
                !query.expr.contains("[$__interval]"),
                "{}: {} ranges over one step; use $__rate_interval",
                query.place,
                query.expr
            );
        }
    }
}
