"""The InstaMsg device protocol: pure, byte-exact payload readers and writers."""
