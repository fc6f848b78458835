#!/usr/bin/env bash
# The one mechanical reformat: `npm run format` (prettier, then clang-format) over the whole tree,
# committed alone, then a second commit listing it in .git-blame-ignore-revs so that
# `git blame` (and GitHub's blame view) skips it. Run once, on a clean tree, after the branches
# that rewrite the code have merged; then rebuild and test (npm run compile && npm test).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! git diff --quiet || ! git diff --cached --quiet; then
  echo "format-all: the tree has uncommitted changes; commit or stash them first" >&2
  exit 1
fi

npm run --silent format
if git diff --quiet; then
  echo "format-all: nothing to reformat"
  exit 0
fi
changed=$(git diff --name-only | wc -l)
git commit -q -a -m "Reformat with prettier and clang-format (scripts/format-all.sh)

Mechanical: npm run format over the tree, nothing else. Listed in .git-blame-ignore-revs."
rev=$(git rev-parse HEAD)
{
  [ -f .git-blame-ignore-revs ] || printf '# Mechanical commits for git blame to skip: git config blame.ignoreRevsFile .git-blame-ignore-revs\n'
  printf '# Reformat with prettier and clang-format\n%s\n' "$rev"
} >>.git-blame-ignore-revs
git add .git-blame-ignore-revs
git commit -q -m "git blame skips the reformat commit ${rev:0:10}"
echo "format-all: reformatted $changed files in ${rev:0:10}; now: npm run compile && npm run lint && npm test"
