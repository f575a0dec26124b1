"""API tokens, publish sessions and the owner-readable (encrypted) stream key.

Revision ID: 0002
Revises: 0001
Created: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``streams.key_ciphertext`` and create ``api_tokens`` and ``publish_sessions``."""
    # Existing rows keep NULL: their plaintext keys were never stored, owners must rotate to see one.
    with op.batch_alter_table("streams") as batch:
        batch.add_column(sa.Column("key_ciphertext", sa.Text(), nullable=True))
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "publish_sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("stream_id", sa.String(36), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("remote_addr", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("avg_bitrate_kbps", sa.Integer(), nullable=True),
        sa.Column("peak_bitrate_kbps", sa.Integer(), nullable=True),
        sa.Column("video_codec", sa.String(32), nullable=True),
        sa.Column("audio_codec", sa.String(32), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publish_sessions")),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_publish_sessions_stream_id_streams"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_publish_sessions_stream_id"), "publish_sessions", ["stream_id"])
    op.create_index("ix_publish_sessions_node_ended_at", "publish_sessions", ["node", "ended_at"])


def downgrade() -> None:
    """Drop the two tables and ``streams.key_ciphertext`` (stored ciphertexts are lost)."""
    op.drop_index("ix_publish_sessions_node_ended_at", table_name="publish_sessions")
    op.drop_index(op.f("ix_publish_sessions_stream_id"), table_name="publish_sessions")
    op.drop_table("publish_sessions")
    op.drop_table("api_tokens")
    # SQLite rebuilds the table here; batch mode reflects and keeps the named status CHECK constraint.
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("key_ciphertext")
