//! FHIR search criteria turned into portable SQL over `resources` and `search_index`. Values
//! are always bound as parameters (`$1`, `$2`, … which both SQLite and PostgreSQL accept);
//! only fixed fragments and parameter names from the server's own table are spliced in.

use sqlx::AnyConnection;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::StoreError;
use super::resources::{StoredResource, current_from_row};
use crate::domain::ResourceType;
use crate::fhir::{DateComparator, DateCriterion, Filter, SearchQuery, SortKey, SortOrder};

enum Bind {
    Text(String),
    Int(i64),
}

/// SQL text under construction with its bound values.
struct SqlBuilder {
    sql: String,
    binds: Vec<Bind>,
}

impl SqlBuilder {
    fn new() -> Self {
        Self {
            sql: String::new(),
            binds: Vec::new(),
        }
    }

    fn push(&mut self, fragment: &str) -> &mut Self {
        self.sql.push_str(fragment);
        self
    }

    fn text(&mut self, value: impl Into<String>) -> &mut Self {
        self.binds.push(Bind::Text(value.into()));
        let n = self.binds.len();
        self.sql.push_str(&format!("${n}"));
        self
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.binds.push(Bind::Int(value));
        let n = self.binds.len();
        self.sql.push_str(&format!("${n}"));
        self
    }

    fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for b in &self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// One page of matches and how many match in all. The page is read one row longer than asked:
/// when it is not full, the total is known from it (the common case of a patient's few
/// resources) and no `COUNT(*)` is run; otherwise, or past the end, the matches are counted.
pub(super) async fn search_on(
    conn: &mut AnyConnection,
    t: ResourceType,
    query: &SearchQuery,
) -> Result<(Vec<StoredResource>, u64), StoreError> {
    let filter = filter_sql(t, query);
    let mut count = SqlBuilder {
        sql: format!("SELECT COUNT(*) AS n{}", filter.sql),
        binds: Vec::new(),
    };
    count.binds = clone_binds(&filter.binds);
    if query.count > 0 {
        let asked = query.count as usize;
        let longer = SearchQuery {
            count: query.count.saturating_add(1),
            ..query.clone()
        };
        let mut page = page_on(conn, t, &longer, filter).await?;
        if page.len() <= asked && (!page.is_empty() || query.offset == 0) {
            let total = u64::from(query.offset) + page.len() as u64;
            return Ok((page, total));
        }
        page.truncate(asked);
        let total: i64 = count.query().fetch_one(&mut *conn).await?.try_get("n")?;
        return Ok((page, total as u64));
    }
    let total: i64 = count.query().fetch_one(&mut *conn).await?.try_get("n")?;
    Ok((Vec::new(), total as u64))
}

/// One page of matches, without counting them all: for lookups that only need to know
/// whether there is exactly one.
pub(super) async fn page_without_total(
    conn: &mut AnyConnection,
    t: ResourceType,
    query: &SearchQuery,
) -> Result<Vec<StoredResource>, StoreError> {
    page_on(conn, t, query, filter_sql(t, query)).await
}

fn filter_sql(t: ResourceType, query: &SearchQuery) -> SqlBuilder {
    let mut filter = SqlBuilder::new();
    filter
        .push(" FROM resources r WHERE r.resource_type = ")
        .text(t.as_str());
    filter.push(" AND r.deleted = 0");
    for f in &query.filters {
        filter.push(" AND ");
        push_filter(&mut filter, t, f);
    }
    filter
}

async fn page_on(
    conn: &mut AnyConnection,
    t: ResourceType,
    query: &SearchQuery,
    filter: SqlBuilder,
) -> Result<Vec<StoredResource>, StoreError> {
    let mut page = SqlBuilder {
        sql: format!(
            "SELECT r.resource_type, r.id, r.version_id, r.last_updated_ms, r.deleted, r.content{}",
            filter.sql
        ),
        binds: filter.binds,
    };
    push_order(&mut page, query);
    // The page's bounds are written into the statement, not bound: SQLite plans a bound LIMIT
    // as a value that may change the plan, so every execution with a new binding prepared
    // the statement again (a fifth of a search's time in the database). They are numbers the
    // query parser made, and a few pairs cover nearly every search.
    page.push(&format!(" LIMIT {} OFFSET {}", query.count, query.offset));
    let rows = page.query().fetch_all(&mut *conn).await?;
    rows.iter().map(|row| current_from_row(t, row)).collect()
}

fn clone_binds(binds: &[Bind]) -> Vec<Bind> {
    binds
        .iter()
        .map(|b| match b {
            Bind::Text(s) => Bind::Text(s.clone()),
            Bind::Int(i) => Bind::Int(*i),
        })
        .collect()
}

/// Opens `r.id [NOT] IN (SELECT … FROM search_index …`; the caller adds conditions and closes
/// it. Driving the match from the index (rather than a correlated `EXISTS` per resource) lets
/// both databases use `search_index_by_value`, so a search costs its matches, not the table.
fn index_match(sql: &mut SqlBuilder, t: ResourceType, param: &str, negate: bool) {
    sql.push(if negate { "r.id NOT IN" } else { "r.id IN" });
    sql.push(" (SELECT i.id FROM search_index i WHERE i.resource_type = ")
        .text(t.as_str())
        .push(" AND i.param = ")
        .text(param);
}

fn push_filter(sql: &mut SqlBuilder, t: ResourceType, filter: &Filter) {
    match filter {
        Filter::Id(ids) => {
            sql.push("r.id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.text(id.as_ref());
            }
            sql.push(")");
        }
        Filter::LastUpdated(criteria) => {
            push_any(sql, criteria, |sql, c| {
                push_date(sql, c, "r.last_updated_ms", "(r.last_updated_ms + 1)")
            });
        }
        Filter::Token {
            param,
            values,
            negate,
        } => {
            index_match(sql, t, param, *negate);
            sql.push(" AND ");
            push_any(sql, values, |sql, v| {
                match (&v.system, &v.code) {
                    (None, Some(code)) => {
                        sql.push("i.value = ").text(code.clone());
                    }
                    (Some(system), Some(code)) if system.is_empty() => {
                        sql.push("(i.system IS NULL AND i.value = ")
                            .text(code.clone())
                            .push(")");
                    }
                    (Some(system), Some(code)) => {
                        sql.push("(i.system = ").text(system.clone());
                        sql.push(" AND i.value = ").text(code.clone()).push(")");
                    }
                    (Some(system), None) => {
                        sql.push("i.system = ").text(system.clone());
                    }
                    (None, None) => {
                        sql.push("1 = 1");
                    }
                };
            });
            sql.push(")");
        }
        Filter::Reference { param, targets } => {
            index_match(sql, t, param, false);
            sql.push(" AND ");
            push_any(sql, targets, |sql, (target_type, id)| {
                sql.push("(i.value = ").text(id.as_ref());
                if let Some(target_type) = target_type {
                    sql.push(" AND i.system = ").text(target_type.clone());
                }
                sql.push(")");
            });
            sql.push(")");
        }
        Filter::Date { param, values } => {
            index_match(sql, t, param, false);
            sql.push(" AND ");
            push_any(sql, values, |sql, c| {
                push_date(sql, c, "i.start_ms", "i.end_ms")
            });
            sql.push(")");
        }
        Filter::Missing { param, missing } => {
            index_match(sql, t, param, *missing);
            sql.push(")");
        }
    }
}

/// `(a OR b OR …)` over `items`.
/// `items` OR'd, as a balanced tree: a flat chain of n terms is an expression n deep, and
/// databases bound the depth (SQLite at 1,000), where a balanced one is 2·log₂ n deep.
fn push_any<T>(sql: &mut SqlBuilder, items: &[T], mut each: impl FnMut(&mut SqlBuilder, &T)) {
    fn balanced<T>(sql: &mut SqlBuilder, items: &[T], each: &mut impl FnMut(&mut SqlBuilder, &T)) {
        match items {
            [] => {}
            [one] => each(sql, one),
            _ => {
                let (left, right) = items.split_at(items.len() / 2);
                sql.push("(");
                balanced(sql, left, each);
                sql.push(" OR ");
                balanced(sql, right, each);
                sql.push(")");
            }
        }
    }
    sql.push("(");
    if items.is_empty() {
        sql.push("1 = 0");
    }
    balanced(sql, items, &mut each);
    sql.push(")");
}

/// Compares the stored range `[start, end)` with the criterion's range (R4 §3.1.1.4.7).
fn push_date(sql: &mut SqlBuilder, c: &DateCriterion, start: &str, end: &str) {
    let (lo, hi) = (c.range.start_ms, c.range.end_ms);
    let within = |sql: &mut SqlBuilder| {
        sql.push("(").push(start).push(" >= ").int(lo);
        sql.push(" AND ").push(end).push(" <= ").int(hi).push(")");
    };
    match c.comparator {
        DateComparator::Eq => within(sql),
        DateComparator::Ne => {
            sql.push("NOT ");
            within(sql);
        }
        DateComparator::Gt => {
            sql.push(end).push(" > ").int(hi);
        }
        DateComparator::Lt => {
            sql.push(start).push(" < ").int(lo);
        }
        DateComparator::Ge => {
            sql.push("(").push(end).push(" > ").int(hi).push(" OR ");
            within(sql);
            sql.push(")");
        }
        DateComparator::Le => {
            sql.push("(").push(start).push(" < ").int(lo).push(" OR ");
            within(sql);
            sql.push(")");
        }
        DateComparator::Sa => {
            sql.push(start).push(" >= ").int(hi);
        }
        DateComparator::Eb => {
            sql.push(end).push(" <= ").int(lo);
        }
    }
}

fn push_order(sql: &mut SqlBuilder, query: &SearchQuery) {
    sql.push(" ORDER BY ");
    for (key, order) in &query.sort {
        let dir = match order {
            SortOrder::Ascending => "ASC",
            SortOrder::Descending => "DESC",
        };
        match key {
            SortKey::Id => {
                sql.push("r.id ").push(dir);
            }
            // With a filter, the filter drives the search (its matches, through the search
            // index) and the few it finds are sorted; `+ 0` keeps the planner from walking the
            // whole type in `resources_by_last_updated` order, testing each resource against
            // the filter (SQLite chose that to avoid a sort: a patient's Observations cost every
            // Observation held). Without a filter, that index gives the order for free.
            SortKey::LastUpdated if !query.filters.is_empty() => {
                sql.push("r.last_updated_ms + 0 ").push(dir);
            }
            SortKey::LastUpdated => {
                sql.push("r.last_updated_ms ").push(dir);
            }
            SortKey::Date(param) => {
                // Resources without the date sort last either way, on both databases.
                let earliest = |sql: &mut SqlBuilder| {
                    sql.push("(SELECT MIN(i.start_ms) FROM search_index i WHERE i.resource_type = r.resource_type AND i.id = r.id AND i.param = ")
                        .text(*param)
                        .push(")");
                };
                sql.push("CASE WHEN ");
                earliest(sql);
                sql.push(" IS NULL THEN 1 ELSE 0 END, ");
                earliest(sql);
                sql.push(" ").push(dir);
            }
        }
        sql.push(", ");
    }
    // A total order, so that pages neither repeat nor skip rows; with a filter, as above, the
    // filter's matches are sorted rather than the type walked in `_lastUpdated` order (a
    // patient's ten Observations cost every Observation held: the default order of a search).
    if query.filters.is_empty() {
        sql.push("r.last_updated_ms ASC, r.id ASC");
    } else {
        sql.push("r.last_updated_ms + 0 ASC, r.id ASC");
    }
}
