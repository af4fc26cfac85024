//! Docker's `--format`: Go templates (through `gtmpl`), the `table` prefix
//! with a header row, Docker's template functions, and Go's tabwriter layout
//! (min width 10, padding 3).

use std::collections::HashMap;
use std::io::Write;

use gtmpl::{Context, FuncError, Template, Value};
use tabwriter::TabWriter;

use crate::client::CliError;

/// Objects carry their own JSON, in Docker's field order, under this key so
/// that `{{json .}}` prints it exactly; templates cannot name it.
const JSON_KEY: &str = "\u{0}json";

/// A template value made from JSON, keeping each object's original JSON for `json`.
pub fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        serde_json::Value::Object(o) => {
            let mut map: HashMap<String, Value> = o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
            map.insert(JSON_KEY.into(), Value::String(json_text(json)));
            Value::Object(map)
        }
    }
}

fn json_text(v: &serde_json::Value) -> String {
    swarmkeep_api::engine::go_escape(serde_json::to_string(v).unwrap_or_default())
}

fn from_value(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(from_value).collect()),
        Value::Object(m) | Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != JSON_KEY)
                .map(|(k, v)| (k.clone(), from_value(v)))
                .collect(),
        ),
    }
}

fn one_arg<'a>(name: &str, args: &'a [Value]) -> Result<&'a Value, FuncError> {
    match args {
        [v] => Ok(v),
        _ => Err(FuncError::ExactlyXArgs(name.into(), 1)),
    }
}

fn string_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_fn(args: &[Value]) -> Result<Value, FuncError> {
    let v = one_arg("json", args)?;
    if let Value::Object(m) = v
        && let Some(Value::String(text)) = m.get(JSON_KEY)
    {
        return Ok(Value::String(text.clone()));
    }
    Ok(Value::String(json_text(&from_value(v))))
}

fn join_fn(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::Array(items), sep] => Ok(Value::String(
            items.iter().map(string_arg).collect::<Vec<_>>().join(&string_arg(sep)),
        )),
        _ => Err(FuncError::ExactlyXArgs("join".into(), 2)),
    }
}

fn lower_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg(one_arg("lower", args)?).to_lowercase()))
}

fn upper_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg(one_arg("upper", args)?).to_uppercase()))
}

fn title_fn(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(one_arg("title", args)?);
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    Ok(Value::String(out))
}

fn split_fn(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [s, sep] => Ok(Value::Array(
            string_arg(s)
                .split(&string_arg(sep))
                .map(|p| Value::String(p.to_string()))
                .collect(),
        )),
        _ => Err(FuncError::ExactlyXArgs("split".into(), 2)),
    }
}

fn truncate_fn(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [s, n] => {
            let n: usize = string_arg(n)
                .parse()
                .map_err(|_| FuncError::Generic("truncate: bad length".into()))?;
            Ok(Value::String(string_arg(s).chars().take(n).collect()))
        }
        _ => Err(FuncError::ExactlyXArgs("truncate".into(), 2)),
    }
}

fn pad_fn(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [s, l, r] => {
            let l: usize = string_arg(l)
                .parse()
                .map_err(|_| FuncError::Generic("pad: bad width".into()))?;
            let r: usize = string_arg(r)
                .parse()
                .map_err(|_| FuncError::Generic("pad: bad width".into()))?;
            Ok(Value::String(format!(
                "{}{}{}",
                " ".repeat(l),
                string_arg(s),
                " ".repeat(r)
            )))
        }
        _ => Err(FuncError::ExactlyXArgs("pad".into(), 3)),
    }
}

fn println_fn(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(format!(
        "{}\n",
        args.iter().map(string_arg).collect::<Vec<_>>().join(" ")
    )))
}

/// Parses `text` as a Go template with Docker's functions.
pub fn parse(text: &str) -> Result<Template, CliError> {
    let mut tmpl = Template::default();
    tmpl.add_funcs(&[
        ("json", json_fn as gtmpl::Func),
        ("join", join_fn as gtmpl::Func),
        ("lower", lower_fn as gtmpl::Func),
        ("upper", upper_fn as gtmpl::Func),
        ("title", title_fn as gtmpl::Func),
        ("split", split_fn as gtmpl::Func),
        ("truncate", truncate_fn as gtmpl::Func),
        ("pad", pad_fn as gtmpl::Func),
        ("println", println_fn as gtmpl::Func),
    ]);
    tmpl.parse(text)
        .map_err(|e| CliError(format!("template parsing error: {e}")))?;
    Ok(tmpl)
}

fn execute(tmpl: &Template, value: Value) -> Result<String, CliError> {
    tmpl.render(&Context::from(value))
        .map_err(|e| CliError(format!("template: {e}")))
}

/// Renders each value with `format` (no table), one line each, as
/// `docker … inspect --format` does.
pub fn render_each(format: &str, values: &[serde_json::Value]) -> Result<String, CliError> {
    let tmpl = parse(&unescape(format))?;
    let mut out = String::new();
    for v in values {
        out.push_str(&execute(&tmpl, to_value(v))?);
        out.push('\n');
    }
    Ok(out)
}

fn unescape(format: &str) -> String {
    format.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders list rows as `docker … ls` does: a `table …` format gets a header
/// row (the template run on `headers`) and tabwriter columns; any other
/// format is one line per row.
pub fn render_list(format: &str, headers: &serde_json::Value, rows: &[serde_json::Value]) -> Result<String, CliError> {
    let Some(table) = format.strip_prefix("table") else {
        return render_each(format.trim_matches(' '), rows);
    };
    let tmpl = parse(&unescape(table.trim_matches(' ')))?;
    // Go's tabwriter counts padding inside its min width (10); this one adds it on top.
    let mut tw = TabWriter::new(Vec::new()).minwidth(10 - 3).padding(3);
    let mut write = |text: String| tw.write_all(text.as_bytes()).map_err(|e| CliError(e.to_string()));
    write(execute(&tmpl, to_value(headers))? + "\n")?;
    for row in rows {
        write(execute(&tmpl, to_value(row))? + "\n")?;
    }
    let bytes = tw.into_inner().map_err(|e| CliError(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_layout_matches_docker() {
        let headers = json!({"ID": "ID", "Name": "NAME", "Driver": "DRIVER"});
        let rows = vec![
            json!({"ID": "10zkf8hf13rcfy05bdp4bba7j", "Name": "api_key", "Driver": ""}),
            json!({"ID": "jzr19sqrw9csffu1xdcobesbp", "Name": "my_mysql_password", "Driver": ""}),
        ];
        let out = render_list("table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\tX", &headers, &rows).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ID                          NAME                DRIVER    X");
        assert_eq!(lines[1], "10zkf8hf13rcfy05bdp4bba7j   api_key                       X");
    }

    #[test]
    fn json_keeps_field_order_and_plain_formats_are_lines() {
        let v = json!({"ID": "x", "Version": {"Index": 3}, "Spec": {"Name": "n<1>"}});
        assert_eq!(
            render_each("{{json .}}", std::slice::from_ref(&v)).unwrap(),
            "{\"ID\":\"x\",\"Version\":{\"Index\":3},\"Spec\":{\"Name\":\"n\\u003c1\\u003e\"}}\n"
        );
        assert_eq!(
            render_each("{{json .Version}} {{.Spec.Name}}", &[v]).unwrap(),
            "{\"Index\":3} n<1>\n"
        );
        let rows = vec![json!({"Name": "a"}), json!({"Name": "b"})];
        assert_eq!(render_list("{{.Name}}", &json!({}), &rows).unwrap(), "a\nb\n");
        assert_eq!(render_list("{{upper .Name}}", &json!({}), &rows).unwrap(), "A\nB\n");
    }

    #[test]
    fn bad_templates_are_clear_errors() {
        assert!(
            render_each("{{.Name", &[json!({})])
                .unwrap_err()
                .0
                .starts_with("template parsing error")
        );
    }
}
