//! DDL files (MySQL/MariaDB and PostgreSQL dialects) read with sqlparser — the parser
//! DataFusion already brings — into [`SchemaChange`]s. Never with regexes: comments, quoted
//! names and strings containing `;` would fool them.
//!
//! A file is tokenised once and parsed statement by statement; after a statement the parser
//! does not understand — reported with its file, line, column and text — it skips to the
//! next top-level `;` (a `;` in a string or comment is inside a token), so the statements
//! after it are still read. Tokens keep their place in the file, so the parser's positions
//! are already file positions.
//!
//! Which dialect a file is written in is found by reading it both ways and keeping the one
//! that understands more statements (MySQL on a tie): a dump rarely says what made it.

use std::fmt;

use datafusion::sql::sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CommentObject, CreateTable, ObjectName, Statement, TableConstraint,
};
use datafusion::sql::sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::schema::{Column, SchemaChange, Table};

/// The SQL dialect a DDL file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::MySql => "MySQL",
            Dialect::Postgres => "PostgreSQL",
        }
    }

    fn parser(self) -> Box<dyn SqlDialect> {
        match self {
            Dialect::MySql => Box::new(MySqlDialect {}),
            Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        }
    }
}

/// A statement that could not be read: where it is, what it says, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlProblem {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// The statement's text (its first 200 characters).
    pub statement: String,
    pub message: String,
}

impl fmt::Display for DdlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} (statement skipped, the rest of the file is still read; fix it or remove it)\n    {}",
            self.file, self.line, self.column, self.message, self.statement
        )
    }
}

/// What one DDL file says.
#[derive(Debug, Clone)]
pub struct ParsedDdl {
    pub dialect: Dialect,
    pub changes: Vec<SchemaChange>,
    pub problems: Vec<DdlProblem>,
}

/// Reads a DDL file in whichever dialect understands more of it.
pub fn parse_ddl(file: &str, text: &str) -> ParsedDdl {
    let mysql = parse_ddl_as(file, text, Dialect::MySql);
    if mysql.problems.is_empty() {
        return mysql;
    }
    let postgres = parse_ddl_as(file, text, Dialect::Postgres);
    if postgres.problems.len() < mysql.problems.len() { postgres } else { mysql }
}

/// Reads a DDL file in one dialect. Never panics and never stops at a bad statement.
pub fn parse_ddl_as(file: &str, text: &str, dialect: Dialect) -> ParsedDdl {
    let parser_dialect = dialect.parser();
    let mut parsed = ParsedDdl { dialect, changes: Vec::new(), problems: Vec::new() };
    // A token per four bytes is about what dumps hold (whitespace is a token too): reserving
    // it spares the regrowth and copying of a vector of millions of tokens.
    let mut tokens = Vec::with_capacity(text.len() / 4);
    match Tokenizer::new(parser_dialect.as_ref(), text).tokenize_with_location_into_buf(&mut tokens) {
        Ok(()) => {}
        Err(e) => {
            // Past an unterminated string or comment nothing can be split any more.
            parsed.problems.push(DdlProblem {
                file: file.to_string(),
                line: e.location.line,
                column: e.location.column,
                statement: excerpt(text, e.location, None),
                message: format!("{} (nothing after it in this file was read)", e.message),
            });
            return parsed;
        }
    }
    // One parser over the file's tokens (no copy per statement: a 7 MB dump is millions of
    // tokens); after a statement it cannot read, it skips to the next top-level `;`.
    let mut parser = Parser::new(parser_dialect.as_ref()).with_tokens_with_locations(tokens);
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let start = parser.peek_token().span.start;
        if parser.peek_token().token == Token::EOF {
            break;
        }
        let problem = match parser.parse_statement() {
            Ok(statement) => {
                let next = parser.peek_token();
                if matches!(next.token, Token::SemiColon | Token::EOF) {
                    changes_of(&statement, file, &mut parsed.changes);
                    continue;
                }
                (
                    next.span.start.line,
                    next.span.start.column,
                    format!("expected the end of the statement, found `{}`", next.token),
                )
            }
            Err(e) => {
                let message = e.to_string();
                let (line, column) =
                    fundguard_rules::sql_parser_position(&message).unwrap_or((start.line, start.column));
                (line, column, clean(&message))
            }
        };
        let end = skip_statement(&mut parser);
        parsed.problems.push(DdlProblem {
            file: file.to_string(),
            line: problem.0,
            column: problem.1,
            statement: excerpt(text, start, Some(end)),
            message: problem.2,
        });
    }
    parsed
}

/// Skips to the end of the statement the parser is in; returns where it ends.
fn skip_statement(parser: &mut Parser<'_>) -> Location {
    loop {
        let token = parser.next_token();
        if matches!(token.token, Token::SemiColon | Token::EOF) {
            return token.span.start;
        }
    }
}

/// The facts a statement states about the schema; other statements (inserts, indexes,
/// grants) say nothing coverage needs.
fn changes_of(statement: &Statement, file: &str, out: &mut Vec<SchemaChange>) {
    match statement {
        Statement::CreateTable(create) => create_table(create, file, out),
        Statement::AlterTable(alter) => {
            let table = name_of(&alter.name);
            for operation in &alter.operations {
                match operation {
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        let (column, references) = column_of(column_def);
                        out.push(SchemaChange::AddColumn { table: table.clone(), column, source: file.to_string() });
                        if let Some(references) = references {
                            let column = ident(&column_def.name);
                            out.push(SchemaChange::ForeignKey { table: table.clone(), column, references });
                        }
                    }
                    AlterTableOperation::AddConstraint { constraint, .. } => foreign_keys(&table, constraint, out),
                    _ => {}
                }
            }
        }
        Statement::Comment { object_type: CommentObject::Column, object_name, comment: Some(comment), .. } => {
            let name = name_of(object_name);
            if let Some((table, column)) = name.rsplit_once('.') {
                out.push(SchemaChange::Comment {
                    table: table.to_string(),
                    column: column.to_string(),
                    comment: comment.clone(),
                });
            }
        }
        _ => {}
    }
}

fn create_table(create: &CreateTable, file: &str, out: &mut Vec<SchemaChange>) {
    let name = name_of(&create.name);
    let mut keys = Vec::new();
    let columns = create
        .columns
        .iter()
        .map(|def| {
            let (column, references) = column_of(def);
            if let Some(references) = references {
                keys.push(SchemaChange::ForeignKey { table: name.clone(), column: column.name.clone(), references });
            }
            column
        })
        .collect();
    out.push(SchemaChange::CreateTable(Table { name: name.clone(), columns, source: file.to_string() }));
    out.append(&mut keys);
    for constraint in &create.constraints {
        foreign_keys(&name, constraint, out);
    }
}

/// A column and the table its inline `REFERENCES` points at.
fn column_of(def: &ColumnDef) -> (Column, Option<String>) {
    let mut comment = None;
    let mut references = None;
    for option in &def.options {
        match &option.option {
            ColumnOption::Comment(text) => comment = Some(text.clone()),
            ColumnOption::ForeignKey(fk) => references = Some(name_of(&fk.foreign_table)),
            _ => {}
        }
    }
    let column = Column {
        name: ident(&def.name),
        data_type: def.data_type.to_string(),
        comment,
        references: None,
        samples: Vec::new(),
    };
    (column, references)
}

fn foreign_keys(table: &str, constraint: &TableConstraint, out: &mut Vec<SchemaChange>) {
    if let TableConstraint::ForeignKey(fk) = constraint {
        let references = name_of(&fk.foreign_table);
        for column in &fk.columns {
            out.push(SchemaChange::ForeignKey {
                table: table.to_string(),
                column: ident(column),
                references: references.clone(),
            });
        }
    }
}

/// `shop.orders`, unquoted parts in lower case as both servers fold them.
fn name_of(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(i) => ident(i),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn ident(i: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

/// The statement's text between two places, on one line, at most 200 characters.
fn excerpt(text: &str, start: Location, end: Option<Location>) -> String {
    let from = offset(text, start);
    let to = end.map(|e| offset(text, e)).unwrap_or(text.len()).max(from);
    let one_line: String = text[from..to].split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = one_line.chars().take(200).collect();
    if short.len() < one_line.len() {
        short.push('…');
    }
    short
}

/// The byte offset of a 1-based line and (character) column; the end when past it.
fn offset(text: &str, at: Location) -> usize {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in text.char_indices() {
        if line == at.line && column == at.column {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    text.len()
}

fn clean(message: &str) -> String {
    let message = message.trim_start_matches("sql parser error: ");
    match message.rfind(" at Line: ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(parsed: &ParsedDdl) -> Vec<&Table> {
        parsed
            .changes
            .iter()
            .filter_map(|c| match c {
                SchemaChange::CreateTable(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reads_mysql_columns_comments_and_foreign_keys() {
        let sql = "CREATE TABLE `shop`.`refunds` (\n  id BIGINT PRIMARY KEY,\n  payment_id BIGINT NOT NULL,\n  amount BIGINT NOT NULL COMMENT 'fen',\n  FOREIGN KEY (payment_id) REFERENCES payments(id)\n) ENGINE=InnoDB;";
        let parsed = parse_ddl("a.sql", sql);
        assert_eq!(parsed.dialect, Dialect::MySql);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let refunds = tables(&parsed)[0];
        assert_eq!(refunds.name, "shop.refunds");
        assert_eq!(refunds.columns[2].comment.as_deref(), Some("fen"));
        assert!(parsed.changes.contains(&SchemaChange::ForeignKey {
            table: "shop.refunds".into(),
            column: "payment_id".into(),
            references: "payments".into()
        }));
    }

    #[test]
    fn reads_postgres_comment_statements() {
        let sql = "CREATE TABLE shop.orders (id bigint, pay_amount numeric(12,2));\nCOMMENT ON COLUMN shop.orders.pay_amount IS 'what the buyer pays';";
        let parsed = parse_ddl("b.sql", sql);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert!(parsed.changes.contains(&SchemaChange::Comment {
            table: "shop.orders".into(),
            column: "pay_amount".into(),
            comment: "what the buyer pays".into()
        }));
    }

    #[test]
    fn a_bad_statement_is_located_and_the_rest_still_read() {
        let sql = "CREATE TABLE a (id BIGINT);\n\nCREATE TABLE b (id BIGINT,, x INT);\nCREATE TABLE c (fee BIGINT);\n";
        let parsed = parse_ddl("bad.sql", sql);
        assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
        let problem = &parsed.problems[0];
        assert_eq!((problem.line, problem.column), (3, 27), "{problem}");
        assert_eq!(problem.statement, "CREATE TABLE b (id BIGINT,, x INT)");
        let names: Vec<&str> = tables(&parsed).iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn a_semicolon_in_a_string_or_comment_does_not_split() {
        let sql = "-- a; comment\nCREATE TABLE a (note VARCHAR(10) DEFAULT 'x;y' COMMENT 'p;q');";
        let parsed = parse_ddl("c.sql", sql);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(tables(&parsed)[0].columns[0].comment.as_deref(), Some("p;q"));
    }

    #[test]
    fn alter_table_adds_columns() {
        let parsed = parse_ddl("m.sql", "ALTER TABLE shop.refunds ADD COLUMN refund_fee BIGINT NOT NULL DEFAULT 0;");
        assert!(matches!(&parsed.changes[..], [SchemaChange::AddColumn { table, column, .. }]
            if table == "shop.refunds" && column.name == "refund_fee"));
    }
}
