"""What people read: terminal tables, Markdown, the self-contained HTML report, the thread-scaling report."""
