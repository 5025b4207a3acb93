//! Loading users from a CSV file in the export's format (`users-api
//! import`): the columns are named by the export's headers, in any order and
//! any subset that has `User ID` or `Email`; each row is checked by the rules
//! of `POST /users` (an import may restore a user without attributes) and
//! keeps its `First Seen` and `Last Seen`. A cell the export guarded against
//! spreadsheets (`'=…`) is read back without the guard, so an export imports
//! as it was.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::export::{ExportField, FORMULA_TRIGGERS};
use crate::model::Timestamp;
use crate::validate::{NewUser, parse_imported_user};

/// The columns of an import file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportColumns(Vec<ExportField>);

impl ImportColumns {
    /// The columns named by `headers`; every header must be one of the
    /// export's, once, and `User ID` or `Email` must be there.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut fields = Vec::new();
        let mut seen = BTreeSet::new();
        for header in headers {
            let header = header.trim();
            let field = ExportField::ALL
                .into_iter()
                .find(|field| field.header() == header)
                .ok_or_else(|| {
                    let known: Vec<&str> = ExportField::ALL.iter().map(|f| f.header()).collect();
                    format!(
                        "unknown column {header:?}; the columns are the export's: {}",
                        known.join(", ")
                    )
                })?;
            if !seen.insert(field.header()) {
                return Err(format!("the column {header:?} is there twice"));
            }
            fields.push(field);
        }
        if !fields.contains(&ExportField::UserId) && !fields.contains(&ExportField::Email) {
            return Err("a file needs a \"User ID\" or an \"Email\" column".into());
        }
        Ok(Self(fields))
    }

    /// The `userId` a row gives (its `User ID` cell, unguarded), if any.
    pub fn user_id<'a>(&self, cells: &[&'a str]) -> Option<&'a str> {
        let column = self
            .0
            .iter()
            .position(|&field| field == ExportField::UserId)?;
        cells
            .get(column)
            .map(|cell| unguard_cell(cell))
            .filter(|id| !id.is_empty())
    }

    /// The user of one row (its cells in column order), or every reason it
    /// cannot be one, each naming its column.
    pub fn user(&self, cells: &[&str]) -> Result<NewUser, Vec<FieldError>> {
        if cells.len() != self.0.len() {
            return Err(vec![FieldError::new(
                "row",
                format!(
                    "has {} cells where the header has {}",
                    cells.len(),
                    self.0.len()
                ),
            )]);
        }
        let mut attributes = Map::new();
        let mut body = Map::new();
        let (mut created_at, mut last_seen) = (None, None);
        let mut errors = Vec::new();
        for (&field, &cell) in self.0.iter().zip(cells) {
            let cell = unguard_cell(cell);
            if cell.is_empty() {
                continue;
            }
            let date = |errors: &mut Vec<FieldError>| match Timestamp::parse(cell) {
                Ok(date) => Some(date),
                Err(_) => {
                    errors.push(FieldError::new(
                        field.header(),
                        "must be a date such as 2019-01-23 13:32:30.163Z",
                    ));
                    None
                }
            };
            match field {
                ExportField::UserId => {
                    body.insert("userId".into(), Value::String(cell.to_owned()));
                }
                ExportField::FirstSeen => created_at = date(&mut errors),
                ExportField::LastSeen => last_seen = date(&mut errors),
                attribute => {
                    attributes.insert(attribute.name().to_owned(), Value::String(cell.to_owned()));
                }
            }
        }
        body.insert("attributes".into(), Value::Object(attributes));
        let mut user = parse_imported_user(&Value::Object(body)).map_err(|found| {
            found
                .into_iter()
                .map(|error| FieldError::new(column_of(&error.field), error.message))
                .collect::<Vec<_>>()
        });
        if let Ok(user) = &mut user {
            user.created_at = created_at;
            user.last_seen = last_seen;
        }
        match user {
            Ok(user) if errors.is_empty() => Ok(user),
            Ok(_) => Err(errors),
            Err(mut found) => {
                found.extend(errors);
                Err(found)
            }
        }
    }
}

/// The column header of a field path of the create rules
/// (`attributes.default_email` is `Email`).
fn column_of(path: &str) -> String {
    let name = path.strip_prefix("attributes.").unwrap_or(path);
    ExportField::parse(name).map_or_else(|| path.to_owned(), |field| field.header().to_owned())
}

/// A cell as it was before the export guarded it (`'=1` is `=1`).
pub fn unguard_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_TRIGGERS) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::guard_cell;

    #[test]
    fn columns_are_the_exports_headers_with_a_user_id_or_an_email() {
        let columns = ImportColumns::from_headers(["Email", "User ID", "First Seen"]).unwrap();
        assert_eq!(
            columns.0,
            vec![
                ExportField::Email,
                ExportField::UserId,
                ExportField::FirstSeen
            ]
        );
        assert!(
            ImportColumns::from_headers(["Name"])
                .unwrap_err()
                .contains("User ID")
        );
        assert!(
            ImportColumns::from_headers(["Email", "Shoe size"])
                .unwrap_err()
                .contains("Shoe size")
        );
        assert!(
            ImportColumns::from_headers(["Email", "Email"])
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn a_row_is_a_user_with_its_dates_and_its_cells_unguarded() {
        let columns =
            ImportColumns::from_headers(["User ID", "Name", "First Seen", "Last Seen"]).unwrap();
        let user = columns
            .user(&[
                "u-1",
                "'=cmd",
                "2019-01-23 13:32:30.163Z",
                "2019-02-01 00:00:00.000Z",
            ])
            .unwrap();
        assert_eq!(user.user_id, "u-1");
        assert_eq!(columns.user_id(&["u-1", "", "", ""]), Some("u-1"));
        assert_eq!(columns.user_id(&["", "Ann", "", ""]), None);
        assert_eq!(user.attributes["default_name"], "=cmd");
        assert_eq!(
            user.created_at,
            Some(Timestamp::parse("2019-01-23 13:32:30.163Z").unwrap())
        );
        assert_eq!(
            user.last_seen,
            Some(Timestamp::parse("2019-02-01T00:00:00Z").unwrap())
        );
        let bare = columns.user(&["u-2", "", "", ""]).unwrap();
        assert!(
            bare.attributes.is_empty(),
            "a user without attributes imports"
        );
        assert_eq!(bare.created_at, None);
    }

    #[test]
    fn a_bad_row_names_its_columns() {
        let columns = ImportColumns::from_headers(["Email", "Name", "First Seen"]).unwrap();
        let errors = columns
            .user(&["not an address", "", "yesterday"])
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["Email", "First Seen"], "{errors:?}");
        let missing = columns.user(&["", "Ann", ""]).unwrap_err();
        assert_eq!(missing[0].field, "User ID", "{missing:?}");
        assert_eq!(columns.user(&["a@b"]).unwrap_err()[0].field, "row");
    }

    #[test]
    fn unguarding_undoes_the_exports_guard() {
        for cell in ["=1+1", "+7", "-3", "@me", "\tx", "plain", "'quoted", ""] {
            assert_eq!(unguard_cell(&guard_cell(cell)), cell);
        }
    }
}
