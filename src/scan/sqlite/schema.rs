//! The schema table and what this reader needs from a table's `CREATE TABLE` statement.
//!
//! # `sqlite_schema`
//!
//! A rowid table rooted at page 1 with one row per table, index, view and trigger:
//! `(type TEXT, name TEXT, tbl_name TEXT, rootpage INTEGER, sql TEXT)`. `rootpage` is
//! where the object's b-tree starts: 0 for views, triggers and virtual tables, which
//! have none. `sql` is the statement that created the object, as written (NULL for the
//! automatic indexes of `UNIQUE` and `PRIMARY KEY` constraints).
//!
//! # The rowid alias
//!
//! A column declared `INTEGER PRIMARY KEY` (exactly that type name, in any letter case)
//! is another name for the rowid: the row stores NULL in its place and the value is the
//! cell's rowid. The same holds when the table constraint `PRIMARY KEY (column)` names
//! one such column, except that a column constraint `INTEGER PRIMARY KEY DESC` does not
//! make an alias (a quirk SQLite keeps for compatibility). A `WITHOUT ROWID` table has no
//! rowid and is stored as an index b-tree, which this reader does not read.
//!
//! To find the alias the column definitions between the outer parentheses are split on
//! their top-level commas; each starts with the column name (bare or quoted with `"`,
//! `'`, `` ` `` or `[]`), then the type's words up to the first constraint keyword.

use super::btree::Row;
use super::error::SqliteError;
use super::record::Value;

/// The most rows `sqlite_schema` may have (an rpmdb has about 55).
pub const MAX_SCHEMA_ENTRIES: usize = 10_000;

/// One row of `sqlite_schema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaEntry {
    /// `table`, `index`, `view` or `trigger`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The table an index or trigger belongs to (a table's own name for a table).
    pub table_name: String,
    /// The root page of its b-tree; 0 when it has none.
    pub root_page: u32,
    /// The statement that created it, when there is one.
    pub sql: Option<String>,
}

impl SchemaEntry {
    /// Reads one row of `sqlite_schema`.
    pub(super) fn from_row(row: &Row) -> Result<Self, SqliteError> {
        let problem = |problem| SqliteError::Schema {
            rowid: row.rowid,
            problem,
        };
        let text = |index: usize, what| match row.values.get(index) {
            Some(Value::Text(text)) => Ok(text.clone()),
            _ => Err(problem(what)),
        };
        let root_page = match row.values.get(3) {
            Some(Value::Integer(page)) => {
                u32::try_from(*page).map_err(|_| problem("rootpage is not a page number"))?
            }
            Some(Value::Null) => 0,
            _ => return Err(problem("rootpage is not an integer")),
        };
        let sql = match row.values.get(4) {
            Some(Value::Text(sql)) => Some(sql.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return Err(problem("sql is not text")),
        };
        Ok(SchemaEntry {
            kind: text(0, "type is not text")?,
            name: text(1, "name is not text")?,
            table_name: text(2, "tbl_name is not text")?,
            root_page,
            sql,
        })
    }

    /// Whether this is a table or view called `name` (SQLite compares names ignoring
    /// ASCII case).
    pub(super) fn is_table_or_view(&self, name: &str) -> bool {
        (self.kind == "table" || self.kind == "view") && self.name.eq_ignore_ascii_case(name)
    }
}

/// What a `CREATE TABLE` statement says about the rowid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowidLayout {
    /// The table has no rowid (`WITHOUT ROWID`).
    pub(super) without_rowid: bool,
    /// The index of the column that aliases the rowid, if one does.
    pub(super) alias: Option<usize>,
}

/// Reads the rowid layout from a table's `CREATE TABLE` statement.
pub(super) fn rowid_layout(sql: &str) -> RowidLayout {
    let tokens = tokenize(sql);
    let open = tokens.iter().position(|t| *t == Token::Punct('('));
    let mut definitions: Vec<Vec<&Token>> = vec![Vec::new()];
    let mut depth = 0usize;
    let mut after = tokens.len();
    for (index, token) in tokens
        .iter()
        .enumerate()
        .skip(open.map_or(tokens.len(), |o| o + 1))
    {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 0 => {
                after = index + 1;
                break;
            }
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                definitions.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(definition) = definitions.last_mut() {
            definition.push(token);
        }
    }
    let trailer = tokens.get(after..).unwrap_or_default();
    let without_rowid = trailer
        .windows(2)
        .any(|pair| pair[0].is_word("WITHOUT") && pair[1].is_word("ROWID"));

    let mut columns: Vec<(&str, bool)> = Vec::new(); // (name, declared exactly INTEGER)
    let mut column_key: Option<usize> = None;
    let mut table_key: Option<Vec<&str>> = None;
    for definition in &definitions {
        let Some(first) = definition.first() else {
            continue;
        };
        if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|k| first.is_word(k))
        {
            if let Some(key) = primary_key_columns(definition) {
                table_key = Some(key);
            }
            continue;
        }
        let Some(name) = first.text() else {
            continue;
        };
        let rest = definition.get(1..).unwrap_or_default();
        let type_end = rest
            .iter()
            .position(|t| CONSTRAINT_WORDS.iter().any(|k| t.is_word(k)))
            .unwrap_or(rest.len());
        let type_words = rest.get(..type_end).unwrap_or_default();
        let integer = matches!(type_words, [t] if t.is_word("INTEGER"));
        let constraints = rest.get(type_end..).unwrap_or_default();
        let key_at = constraints
            .windows(2)
            .position(|pair| pair[0].is_word("PRIMARY") && pair[1].is_word("KEY"));
        if let Some(key_at) = key_at {
            let descending = constraints
                .get(key_at + 2)
                .is_some_and(|t| t.is_word("DESC"));
            if integer && !descending {
                column_key = Some(columns.len());
            }
        }
        columns.push((name, integer));
    }
    let alias = column_key.or_else(|| match table_key.as_deref() {
        Some([key]) => columns
            .iter()
            .position(|(name, integer)| *integer && name.eq_ignore_ascii_case(key)),
        _ => None,
    });
    RowidLayout {
        without_rowid,
        alias: if without_rowid { None } else { alias },
    }
}

/// Words that end a column's type name and start its constraints.
const CONSTRAINT_WORDS: [&str; 11] = [
    "CONSTRAINT",
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "CHECK",
    "DEFAULT",
    "COLLATE",
    "REFERENCES",
    "GENERATED",
    "AS",
];

/// The columns of a `PRIMARY KEY (a, b …)` table constraint.
fn primary_key_columns<'t>(definition: &[&'t Token]) -> Option<Vec<&'t str>> {
    let key_at = definition
        .windows(2)
        .position(|pair| pair[0].is_word("PRIMARY") && pair[1].is_word("KEY"))?;
    let inside = definition.get(key_at + 2..)?;
    if inside.first().is_none_or(|t| **t != Token::Punct('(')) {
        return None;
    }
    // Each indexed column is a name, then perhaps COLLATE x and ASC or DESC.
    let mut names = Vec::new();
    let mut expect_name = true;
    for token in inside.get(1..)? {
        match token {
            Token::Punct(')') => return Some(names),
            Token::Punct(',') => expect_name = true,
            _ if expect_name => {
                names.push(token.text()?);
                expect_name = false;
            }
            _ => {}
        }
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword, a bare or quoted identifier, a number or a string literal.
    Word { text: String, quoted: bool },
    /// `(`, `)`, `,` and any other single character.
    Punct(char),
}

impl Token {
    fn is_word(&self, keyword: &str) -> bool {
        matches!(self, Token::Word { text, quoted: false } if text.eq_ignore_ascii_case(keyword))
    }

    fn text(&self) -> Option<&str> {
        match self {
            Token::Word { text, .. } => Some(text),
            Token::Punct(_) => None,
        }
    }
}

/// Splits SQL into words, quoted names and punctuation, dropping spaces and comments.
fn tokenize(sql: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek() == Some(&'-') => {
                chars.by_ref().find(|&c| c == '\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for c in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
            }
            '"' | '\'' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    if c != close {
                        text.push(c);
                    } else if close != ']' && chars.peek() == Some(&close) {
                        // A doubled quote stands for itself.
                        chars.next();
                        text.push(c);
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word { text, quoted: true });
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut text = String::from(c);
                while let Some(&next) = chars.peek() {
                    if !(next.is_alphanumeric() || next == '_' || next == '$' || next == '.') {
                        break;
                    }
                    text.push(next);
                    chars.next();
                }
                tokens.push(Token::Word {
                    text,
                    quoted: false,
                });
            }
            c => tokens.push(Token::Punct(c)),
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(sql: &str) -> Option<usize> {
        rowid_layout(sql).alias
    }

    #[test]
    fn the_rpmdb_packages_table_aliases_hnum() {
        let sql = "CREATE TABLE IF NOT EXISTS 'Packages' \
                   (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL)";
        assert_eq!(
            rowid_layout(sql),
            RowidLayout {
                without_rowid: false,
                alias: Some(0)
            }
        );
    }

    #[test]
    fn only_the_type_integer_makes_an_alias() {
        assert_eq!(
            alias("CREATE TABLE t(a TEXT, b integer primary key)"),
            Some(1)
        );
        assert_eq!(alias("CREATE TABLE t(a INT PRIMARY KEY, b)"), None);
        assert_eq!(alias("CREATE TABLE t(a BIGINT PRIMARY KEY)"), None);
        assert_eq!(
            alias("CREATE TABLE t(a INTEGER NOT NULL PRIMARY KEY)"),
            Some(0)
        );
        assert_eq!(alias("CREATE TABLE t(a INTEGER, b TEXT)"), None);
        assert_eq!(alias("CREATE TABLE t(a INTEGER PRIMARY KEY DESC)"), None);
    }

    #[test]
    fn quoted_names_comments_and_nested_parentheses() {
        let sql = "CREATE TABLE \"x y\" ( -- comment, with a comma\n\
                   [odd, name] VARCHAR(10, 2) DEFAULT ('a,b'), /* (, */ \
                   \"id\" INTEGER CONSTRAINT pk PRIMARY KEY ASC)";
        assert_eq!(alias(sql), Some(1));
    }

    #[test]
    fn a_table_constraint_names_the_alias() {
        assert_eq!(
            alias("CREATE TABLE t(a TEXT, `b` INTEGER, PRIMARY KEY (b DESC))"),
            Some(1)
        );
        assert_eq!(
            alias("CREATE TABLE t(a INTEGER, b INTEGER, PRIMARY KEY (a, b))"),
            None
        );
        assert_eq!(alias("CREATE TABLE t(a TEXT, PRIMARY KEY (a))"), None);
    }

    #[test]
    fn without_rowid_tables_are_recognised() {
        let layout = rowid_layout("CREATE TABLE t(a INTEGER PRIMARY KEY, b) WITHOUT ROWID");
        assert!(layout.without_rowid);
        assert_eq!(layout.alias, None);
    }

    #[test]
    fn nonsense_sql_has_no_alias() {
        assert_eq!(alias(""), None);
        assert_eq!(alias("CREATE TABLE t(((("), None);
        assert_eq!(alias(")))"), None);
    }
}
