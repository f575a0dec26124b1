"""Create the streams table.

Revision ID: 0001
Revises:
Created: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_STATUSES = ("DRAFT", "LIVE", "ENDED")


def upgrade() -> None:
    """Create ``streams`` with its unique slug and key-hash indexes."""
    op.create_table(
        "streams",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("video_codec", sa.String(32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("audio_codec", sa.String(32), nullable=True),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("bitrate_kbps", sa.Integer(), nullable=True),
        sa.Column("viewers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams")),
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in _STATUSES) + ")",
            name=op.f("ck_streams_stream_status"),
        ),
        sa.UniqueConstraint("slug", name=op.f("uq_streams_slug")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_streams_key_hash")),
    )
    op.create_index(op.f("ix_streams_status"), "streams", ["status"])


def downgrade() -> None:
    """Drop ``streams``."""
    op.drop_index(op.f("ix_streams_status"), table_name="streams")
    op.drop_table("streams")
