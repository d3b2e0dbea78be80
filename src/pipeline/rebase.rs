//! Re-applying one person's edits onto a version someone else saved meanwhile: a three-way merge
//! of pipeline declarations (as JSON), pure.
//!
//! `base` is the version the editor was opened at, `mine` the editor's working copy, `theirs` the
//! latest stored version. What only one side changed is taken from that side; what both changed
//! alike is taken once. Objects merge key by key; lists of named things (stages, actions,
//! artifacts, variables) merge element by element by name, so two people editing different
//! stages or actions both keep their change. Where both changed the same value differently, mine
//! wins (the user is re-applying their change) and the path is reported, for the editor to show
//! before anything is saved.

use serde_json::{Map, Value};

/// The merged declaration, and the paths where both sides changed the same value (mine kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Rebased {
    pub merged: Value,
    pub conflicts: Vec<String>,
}

pub fn rebase(base: &Value, mine: &Value, theirs: &Value) -> Rebased {
    let mut conflicts = Vec::new();
    let merged = merge(Some(base), Some(mine), Some(theirs), "", &mut conflicts)
        .unwrap_or_else(|| mine.clone());
    Rebased { merged, conflicts }
}

/// One value, any side possibly absent (`None`: the key or element is not there).
fn merge(
    base: Option<&Value>,
    mine: Option<&Value>,
    theirs: Option<&Value>,
    path: &str,
    conflicts: &mut Vec<String>,
) -> Option<Value> {
    if mine == base {
        return theirs.cloned();
    }
    if theirs == base || mine == theirs {
        return mine.cloned();
    }
    // Both changed it, differently.
    match (base, mine, theirs) {
        (Some(Value::Object(b)), Some(Value::Object(m)), Some(Value::Object(t))) => {
            Some(Value::Object(merge_objects(b, m, t, path, conflicts)))
        }
        (Some(Value::Array(b)), Some(Value::Array(m)), Some(Value::Array(t)))
            if [b, m, t].iter().all(|list| named(list)) =>
        {
            Some(Value::Array(merge_named(b, m, t, path, conflicts)))
        }
        _ => {
            conflicts.push(if path.is_empty() {
                "the whole pipeline".to_string()
            } else {
                path.to_string()
            });
            mine.cloned()
        }
    }
}

fn merge_objects(
    base: &Map<String, Value>,
    mine: &Map<String, Value>,
    theirs: &Map<String, Value>,
    path: &str,
    conflicts: &mut Vec<String>,
) -> Map<String, Value> {
    let mut keys: Vec<&String> = mine.keys().collect();
    for key in theirs.keys().chain(base.keys()) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut merged = Map::new();
    for key in keys {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if let Some(value) = merge(
            base.get(key),
            mine.get(key),
            theirs.get(key),
            &at,
            conflicts,
        ) {
            merged.insert(key.clone(), value);
        }
    }
    merged
}

fn name_of(value: &Value) -> Option<&str> {
    value.get("name")?.as_str()
}

/// A list whose every element is an object with a name, each name once.
fn named(list: &[Value]) -> bool {
    let mut seen = std::collections::HashSet::new();
    list.iter()
        .all(|v| name_of(v).is_some_and(|n| seen.insert(n)))
}

fn names(list: &[Value]) -> Vec<&str> {
    list.iter().filter_map(name_of).collect()
}

/// Which base element each element of a side is: the one of the same name, else (a rename in
/// place) the base element at the same position whose name the side no longer has. Elements that
/// are new on the side are keyed by their own name, marked so no base name can equal it.
fn identities(base: &[&str], side: &[&str]) -> Vec<String> {
    let mut ids: Vec<Option<String>> = side
        .iter()
        .map(|n| base.contains(n).then(|| n.to_string()))
        .collect();
    for i in 0..side.len() {
        let Some(original) = base.get(i) else { break };
        let free =
            !side.contains(original) && !ids.iter().any(|id| id.as_deref() == Some(original));
        if ids[i].is_none() && free {
            ids[i] = Some(original.to_string());
        }
    }
    ids.into_iter()
        .zip(side)
        .map(|(id, name)| id.unwrap_or_else(|| format!("\0{name}")))
        .collect()
}

/// Named lists: element by element (matched by [`identities`]), in mine's order if I reordered
/// the elements we share with the base, else in theirs'; an element only one side has goes after
/// the element it followed there.
fn merge_named(
    base: &[Value],
    mine: &[Value],
    theirs: &[Value],
    path: &str,
    conflicts: &mut Vec<String>,
) -> Vec<Value> {
    let b: Vec<String> = names(base).into_iter().map(str::to_string).collect();
    let base_names = names(base);
    let m = identities(&base_names, &names(mine));
    let t = identities(&base_names, &names(theirs));
    let shared_order = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|k| b.contains(k) && m.contains(k) && t.contains(k))
            .cloned()
            .collect()
    };
    let mine_reordered = shared_order(&m) != shared_order(&b);
    let (leading, other) = if mine_reordered { (&m, &t) } else { (&t, &m) };
    let mut order: Vec<&String> = leading.iter().collect();
    for (i, key) in other.iter().enumerate() {
        if order.contains(&key) {
            continue;
        }
        let after = other[..i].iter().rev().find(|k| order.contains(k));
        let at = after.map_or(0, |a| order.iter().position(|k| *k == a).unwrap_or(0) + 1);
        order.insert(at, key);
    }
    // Elements the base had but both sides dropped are not in `order`, and stay dropped.
    let merged: Vec<Value> = order
        .into_iter()
        .filter_map(|key| {
            let (bv, mv, tv) = (
                keyed(base, &b, key),
                keyed(mine, &m, key),
                keyed(theirs, &t, key),
            );
            let shown = mv.or(tv).or(bv).and_then(name_of).unwrap_or_default();
            merge(bv, mv, tv, &format!("{path}[{shown}]"), conflicts)
        })
        .collect();
    // A rename on one side onto a name the other side added: one of them, reported.
    let mut seen = std::collections::HashSet::new();
    merged
        .into_iter()
        .filter(|v| {
            let name = name_of(v).unwrap_or_default().to_string();
            let first = seen.insert(name.clone());
            if !first {
                conflicts.push(format!("{path}[{name}]"));
            }
            first
        })
        .collect()
}

fn keyed<'a>(list: &'a [Value], keys: &[String], key: &str) -> Option<&'a Value> {
    keys.iter().position(|k| k == key).map(|i| &list[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pipeline(stages: Value) -> Value {
        json!({"name": "p", "version": 3, "stages": stages})
    }

    fn stage(name: &str, spec: &str) -> Value {
        json!({"name": name, "actions": [{"name": "Run", "configuration": {"BuildSpec": spec}}]})
    }

    fn find<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
        list.iter().find(|v| name_of(v) == Some(name))
    }

    fn stage_names(v: &Value) -> Vec<&str> {
        names(v["stages"].as_array().unwrap())
    }

    #[test]
    fn edits_to_different_stages_both_survive() {
        let base = pipeline(json!([
            stage("Source", "s"),
            stage("Build", "b"),
            stage("Test", "t")
        ]));
        let mine = pipeline(json!([
            stage("Source", "s"),
            stage("Build", "b2"),
            stage("Test", "t")
        ]));
        let mut theirs = pipeline(json!([
            stage("Source", "s"),
            stage("Build", "b"),
            stage("Test", "t3")
        ]));
        theirs["version"] = json!(4);
        let r = rebase(&base, &mine, &theirs);
        assert!(r.conflicts.is_empty());
        assert_eq!(
            r.merged["version"], 4,
            "the latest version is the one saved upon"
        );
        assert_eq!(
            r.merged["stages"][1]["actions"][0]["configuration"]["BuildSpec"],
            "b2"
        );
        assert_eq!(
            r.merged["stages"][2]["actions"][0]["configuration"]["BuildSpec"],
            "t3"
        );
    }

    #[test]
    fn the_same_value_changed_both_ways_keeps_mine_and_says_where() {
        let base = pipeline(json!([stage("Source", "s"), stage("Build", "b")]));
        let mine = pipeline(json!([stage("Source", "s"), stage("Build", "mine")]));
        let theirs = pipeline(json!([stage("Source", "s"), stage("Build", "theirs")]));
        let r = rebase(&base, &mine, &theirs);
        assert_eq!(
            r.merged["stages"][1]["actions"][0]["configuration"]["BuildSpec"],
            "mine"
        );
        assert_eq!(
            r.conflicts,
            ["stages[Build].actions[Run].configuration.BuildSpec"]
        );
    }

    #[test]
    fn added_stages_land_where_each_side_put_them_and_removals_hold() {
        let base = pipeline(json!([
            stage("Source", "s"),
            stage("Build", "b"),
            stage("Old", "o")
        ]));
        // I add Test after Build; they add Lint after Source and remove Old.
        let mine = pipeline(json!([
            stage("Source", "s"),
            stage("Build", "b"),
            stage("Test", "t"),
            stage("Old", "o")
        ]));
        let theirs = pipeline(json!([
            stage("Source", "s"),
            stage("Lint", "l"),
            stage("Build", "b")
        ]));
        let r = rebase(&base, &mine, &theirs);
        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
        assert_eq!(stage_names(&r.merged), ["Source", "Lint", "Build", "Test"]);
    }

    #[test]
    fn my_reordering_is_kept() {
        let base = pipeline(json!([
            stage("Source", "s"),
            stage("A", "a"),
            stage("B", "b")
        ]));
        let mine = pipeline(json!([
            stage("Source", "s"),
            stage("B", "b"),
            stage("A", "a")
        ]));
        let theirs = pipeline(json!([
            stage("Source", "s"),
            stage("A", "a2"),
            stage("B", "b")
        ]));
        let r = rebase(&base, &mine, &theirs);
        assert_eq!(stage_names(&r.merged), ["Source", "B", "A"]);
        assert_eq!(
            r.merged["stages"][2]["actions"][0]["configuration"]["BuildSpec"],
            "a2"
        );
    }

    #[test]
    fn a_renamed_stage_is_the_same_stage() {
        let base = pipeline(json!([stage("Source", "s"), stage("Approve", "a")]));
        let mine = pipeline(json!([stage("Source", "s"), stage("Gate", "a")]));
        let theirs = pipeline(json!([stage("Source", "s"), stage("Approve", "a2")]));
        let r = rebase(&base, &mine, &theirs);
        assert!(r.conflicts.is_empty());
        assert_eq!(stage_names(&r.merged), ["Source", "Gate"]);
        assert_eq!(
            r.merged["stages"][1]["actions"][0]["configuration"]["BuildSpec"],
            "a2"
        );
        // Both renaming it differently is one conflict, on its name.
        let theirs = pipeline(json!([stage("Source", "s"), stage("Review", "a")]));
        let r = rebase(&base, &mine, &theirs);
        assert_eq!(stage_names(&r.merged), ["Source", "Gate"]);
        assert_eq!(r.conflicts, ["stages[Gate].name"]);
    }

    #[test]
    fn removing_what_the_other_side_changed_is_a_conflict() {
        let base = pipeline(json!([stage("Source", "s"), stage("Build", "b")]));
        let mine = pipeline(json!([stage("Source", "s")]));
        let theirs = pipeline(json!([stage("Source", "s"), stage("Build", "b2")]));
        let r = rebase(&base, &mine, &theirs);
        assert_eq!(stage_names(&r.merged), ["Source"]);
        assert_eq!(r.conflicts, ["stages[Build]"]);
    }

    fn arbitrary_pipeline() -> impl Strategy<Value = Value> {
        let stage = ("[A-D]", "[a-c]{0,2}").prop_map(|(n, spec)| stage(&n, &spec));
        proptest::collection::vec(stage, 0..5).prop_map(|stages| {
            let mut seen = std::collections::HashSet::new();
            let unique: Vec<Value> = stages
                .into_iter()
                .filter(|s| seen.insert(s["name"].as_str().unwrap().to_string()))
                .collect();
            pipeline(Value::Array(unique))
        })
    }

    proptest! {
        /// When only one side changed anything, the merge is exactly that side, with no conflict;
        /// a change made alike on both sides is no conflict either.
        #[test]
        fn one_sided_changes_merge_to_that_side(base in arbitrary_pipeline(), other in arbitrary_pipeline()) {
            let r = rebase(&base, &base, &other);
            prop_assert_eq!(&r.merged, &other);
            prop_assert!(r.conflicts.is_empty());
            let r = rebase(&base, &other, &base);
            prop_assert_eq!(&r.merged, &other);
            prop_assert!(r.conflicts.is_empty());
            let r = rebase(&base, &other, &other);
            prop_assert_eq!(&r.merged, &other);
            prop_assert!(r.conflicts.is_empty());
        }

        /// Whatever both did, every stage of the merge is named as mine or theirs names one, and
        /// each name once.
        #[test]
        fn the_merge_is_made_of_the_sides(base in arbitrary_pipeline(), mine in arbitrary_pipeline(), theirs in arbitrary_pipeline()) {
            let r = rebase(&base, &mine, &theirs);
            let merged = r.merged["stages"].as_array().unwrap();
            prop_assert!(named(merged));
            for s in merged {
                let n = name_of(s).unwrap();
                let m = find(mine["stages"].as_array().unwrap(), n);
                let t = find(theirs["stages"].as_array().unwrap(), n);
                prop_assert!(m.is_some() || t.is_some(), "{} is named by neither side", n);
            }
        }
    }
}
