"""MCP server: read-only analytics tools over the warehouse."""
