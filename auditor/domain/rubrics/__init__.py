"""The shipped rubrics, as data (<name>.toml, read by auditor/domain/rubric_file.py): `guide`, the guide's steps."""
