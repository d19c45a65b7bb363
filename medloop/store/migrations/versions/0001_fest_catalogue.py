"""FEST catalogue tables with version ranges

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fest_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hentet_dato", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source_name", sa.String(length=500), nullable=False),
        sa.Column("fest_version", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=12), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fest_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_version_sha256"), ["sha256"], unique=False)

    op.create_table(
        "fest_entry",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("entry_id", sa.String(length=80), nullable=False),
        sa.Column("tidspunkt", sa.String(length=40), nullable=True),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["valid_from"],
            ["fest_version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["valid_to"],
            ["fest_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fest_entry", schema=None) as batch_op:
        batch_op.create_index("ix_fest_entry_current", ["valid_to", "kind"], unique=False)
        batch_op.create_index("ix_fest_entry_entry_id", ["entry_id"], unique=False)
        batch_op.create_index(
            "ix_fest_entry_kind_domain", ["kind", "domain_id", "valid_to"], unique=False
        )

    op.create_table(
        "fest_code",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("element_id", sa.String(length=80), nullable=True),
        sa.Column("parent_id", sa.String(length=80), nullable=True),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("term", sa.String(length=500), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("terms", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
    )
    with op.batch_alter_table("fest_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_code_entry"), ["entry"], unique=False)

    op.create_table(
        "fest_code_system",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("oid", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("short_name", sa.String(length=100), nullable=True),
        sa.Column("publisher", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_code_system", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_code_system_oid"), ["oid"], unique=False)

    op.create_table(
        "fest_commodity",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("nr", sa.String(length=40), nullable=False),
        sa.Column("commodity_type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("supplier", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_commodity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_commodity_nr"), ["nr"], unique=False)

    op.create_table(
        "fest_condition",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=True),
        sa.Column("group_code", sa.String(length=8), nullable=True),
        sa.Column("group_name", sa.String(length=100), nullable=True),
        sa.Column("applies_to", sa.String(length=8), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("structured", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_condition", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fest_condition_domain_id"), ["domain_id"], unique=False
        )

    op.create_table(
        "fest_drug",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("atc", sa.String(length=16), nullable=True),
        sa.Column("atc_name", sa.String(length=300), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("prescription_group", sa.String(length=4), nullable=True),
        sa.Column("form_code", sa.String(length=16), nullable=True),
        sa.Column("form_name", sa.String(length=200), nullable=True),
        sa.Column("product_type", sa.String(length=8), nullable=True),
        sa.Column("product_type_name", sa.String(length=100), nullable=True),
        sa.Column("application_type", sa.String(length=8), nullable=True),
        sa.Column("opioid_application", sa.Boolean(), nullable=False),
        sa.Column("black_triangle", sa.Boolean(), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=True),
        sa.Column("can_crush", sa.String(length=4), nullable=True),
        sa.Column("can_open", sa.String(length=4), nullable=True),
        sa.Column("division", sa.String(length=4), nullable=True),
        sa.Column("dose_units", sa.JSON(), nullable=True),
        sa.Column("short_doses", sa.JSON(), nullable=True),
        sa.Column("intake_precautions", sa.JSON(), nullable=True),
        sa.Column("label_usages", sa.JSON(), nullable=True),
        sa.Column("refunds", sa.JSON(), nullable=True),
        sa.Column("substitution_group_id", sa.String(length=80), nullable=True),
        sa.Column("substitution_valid_from", sa.Date(), nullable=True),
        sa.Column("substitution_valid_to", sa.Date(), nullable=True),
        sa.Column("brand_name", sa.String(length=300), nullable=True),
        sa.Column("form_long", sa.String(length=300), nullable=True),
        sa.Column("manufacturer", sa.String(length=300), nullable=True),
        sa.Column("prescription_validity", sa.JSON(), nullable=True),
        sa.Column("varenr", sa.String(length=16), nullable=True),
        sa.Column("storage", sa.String(length=4), nullable=True),
        sa.Column("marketing", sa.JSON(), nullable=True),
        sa.Column("prices", sa.JSON(), nullable=True),
        sa.Column("lmr_number", sa.String(length=16), nullable=True),
        sa.Column("amount_value", sa.Float(), nullable=True),
        sa.Column("amount_unit", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_drug", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_drug_atc"), ["atc"], unique=False)
        batch_op.create_index(batch_op.f("ix_fest_drug_domain_id"), ["domain_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_fest_drug_substitution_group_id"),
            ["substitution_group_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_fest_drug_varenr"), ["varenr"], unique=False)

    op.create_table(
        "fest_interaction",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("relevance", sa.Integer(), nullable=False),
        sa.Column("relevance_name", sa.String(length=100), nullable=True),
        sa.Column("situation", sa.Text(), nullable=True),
        sa.Column("consequence", sa.Text(), nullable=False),
        sa.Column("mechanism", sa.Text(), nullable=True),
        sa.Column("source_basis_code", sa.String(length=4), nullable=True),
        sa.Column("source_basis_name", sa.String(length=100), nullable=True),
        sa.Column("handling", sa.Text(), nullable=True),
        sa.Column("display_rules", sa.JSON(), nullable=True),
        sa.Column("references", sa.JSON(), nullable=True),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_interaction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fest_interaction_domain_id"), ["domain_id"], unique=False
        )

    op.create_table(
        "fest_not_assessed",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("atc", sa.String(length=16), nullable=False),
        sa.Column("atc_name", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_not_assessed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_not_assessed_atc"), ["atc"], unique=False)

    op.create_table(
        "fest_notice",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.String(length=8), nullable=False),
        sa.Column("type_name", sa.String(length=100), nullable=True),
        sa.Column("headline", sa.String(length=500), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("from_date", sa.Date(), nullable=True),
        sa.Column("link", sa.String(length=1000), nullable=True),
        sa.Column("link_text", sa.String(length=500), nullable=True),
        sa.Column("display_rules", sa.JSON(), nullable=True),
        sa.Column("coded_info", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    op.create_table(
        "fest_package_ean",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("ean", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
    )
    with op.batch_alter_table("fest_package_ean", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_package_ean_ean"), ["ean"], unique=False)
        batch_op.create_index(batch_op.f("ix_fest_package_ean_entry"), ["entry"], unique=False)

    op.create_table(
        "fest_package_info",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=80), nullable=False),
        sa.Column("pack_size", sa.String(length=40), nullable=True),
        sa.Column("pack_unit", sa.String(length=16), nullable=True),
        sa.Column("pack_type", sa.String(length=16), nullable=True),
        sa.Column("pack_type_name", sa.String(length=100), nullable=True),
        sa.Column("multiple", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("ddd_value", sa.Float(), nullable=True),
        sa.Column("ddd_unit", sa.String(length=16), nullable=True),
        sa.Column("statistics_factor", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
    )
    with op.batch_alter_table("fest_package_info", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_package_info_entry"), ["entry"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_fest_package_info_product_id"), ["product_id"], unique=False
        )

    op.create_table(
        "fest_ref",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
    )
    with op.batch_alter_table("fest_ref", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_ref_entry"), ["entry"], unique=False)
        batch_op.create_index("ix_fest_ref_target", ["target_kind", "target_id"], unique=False)

    op.create_table(
        "fest_refund_basis",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("basis_code", sa.String(length=16), nullable=False),
        sa.Column("basis_name", sa.String(length=200), nullable=True),
        sa.Column("requires_product_link", sa.Boolean(), nullable=False),
        sa.Column("requires_decision", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    op.create_table(
        "fest_refund_group",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.String(length=80), nullable=False),
        sa.Column("group_no", sa.String(length=40), nullable=True),
        sa.Column("group_name", sa.String(length=300), nullable=True),
        sa.Column("atc", sa.String(length=16), nullable=True),
        sa.Column("requires_refund_code", sa.Boolean(), nullable=True),
        sa.Column("usage_text", sa.Text(), nullable=True),
        sa.Column("codes", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
    )
    with op.batch_alter_table("fest_refund_group", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_refund_group_entry"), ["entry"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_fest_refund_group_group_id"), ["group_id"], unique=False
        )

    op.create_table(
        "fest_short_dose",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("phases", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_short_dose", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_short_dose_code"), ["code"], unique=False)

    op.create_table(
        "fest_strength",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("denominator_value", sa.Float(), nullable=True),
        sa.Column("denominator_unit", sa.String(length=16), nullable=True),
        sa.Column("substance_id", sa.String(length=80), nullable=False),
        sa.Column("alt_value", sa.Float(), nullable=True),
        sa.Column("alt_unit", sa.String(length=16), nullable=True),
        sa.Column("alt_denominator_value", sa.Float(), nullable=True),
        sa.Column("alt_denominator_unit", sa.String(length=16), nullable=True),
        sa.Column("operator", sa.String(length=4), nullable=True),
        sa.Column("upper_value", sa.Float(), nullable=True),
        sa.Column("combination_atc", sa.String(length=16), nullable=True),
        sa.Column("combination_atc_name", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_strength", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fest_strength_domain_id"), ["domain_id"], unique=False)

    op.create_table(
        "fest_substance",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("english_name", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_substance", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fest_substance_domain_id"), ["domain_id"], unique=False
        )

    op.create_table(
        "fest_substitution_group",
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.String(length=80), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("restriction_text", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["entry"], ["fest_entry.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entry"),
    )
    with op.batch_alter_table("fest_substitution_group", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fest_substitution_group_domain_id"), ["domain_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("fest_substitution_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_substitution_group_domain_id"))

    op.drop_table("fest_substitution_group")
    with op.batch_alter_table("fest_substance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_substance_domain_id"))

    op.drop_table("fest_substance")
    with op.batch_alter_table("fest_strength", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_strength_domain_id"))

    op.drop_table("fest_strength")
    with op.batch_alter_table("fest_short_dose", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_short_dose_code"))

    op.drop_table("fest_short_dose")
    with op.batch_alter_table("fest_refund_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_refund_group_group_id"))
        batch_op.drop_index(batch_op.f("ix_fest_refund_group_entry"))

    op.drop_table("fest_refund_group")
    op.drop_table("fest_refund_basis")
    with op.batch_alter_table("fest_ref", schema=None) as batch_op:
        batch_op.drop_index("ix_fest_ref_target")
        batch_op.drop_index(batch_op.f("ix_fest_ref_entry"))

    op.drop_table("fest_ref")
    with op.batch_alter_table("fest_package_info", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_package_info_product_id"))
        batch_op.drop_index(batch_op.f("ix_fest_package_info_entry"))

    op.drop_table("fest_package_info")
    with op.batch_alter_table("fest_package_ean", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_package_ean_entry"))
        batch_op.drop_index(batch_op.f("ix_fest_package_ean_ean"))

    op.drop_table("fest_package_ean")
    op.drop_table("fest_notice")
    with op.batch_alter_table("fest_not_assessed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_not_assessed_atc"))

    op.drop_table("fest_not_assessed")
    with op.batch_alter_table("fest_interaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_interaction_domain_id"))

    op.drop_table("fest_interaction")
    with op.batch_alter_table("fest_drug", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_drug_varenr"))
        batch_op.drop_index(batch_op.f("ix_fest_drug_substitution_group_id"))
        batch_op.drop_index(batch_op.f("ix_fest_drug_domain_id"))
        batch_op.drop_index(batch_op.f("ix_fest_drug_atc"))

    op.drop_table("fest_drug")
    with op.batch_alter_table("fest_condition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_condition_domain_id"))

    op.drop_table("fest_condition")
    with op.batch_alter_table("fest_commodity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_commodity_nr"))

    op.drop_table("fest_commodity")
    with op.batch_alter_table("fest_code_system", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_code_system_oid"))

    op.drop_table("fest_code_system")
    with op.batch_alter_table("fest_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_code_entry"))

    op.drop_table("fest_code")
    with op.batch_alter_table("fest_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_fest_entry_kind_domain")
        batch_op.drop_index("ix_fest_entry_entry_id")
        batch_op.drop_index("ix_fest_entry_current")

    op.drop_table("fest_entry")
    with op.batch_alter_table("fest_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fest_version_sha256"))

    op.drop_table("fest_version")
