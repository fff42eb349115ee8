//! The search behind [`super::resolve`]: depth first over cookbooks, newest
//! version first, with forward checking and conflict-directed backjumping
//! (Prosser's FC-CBJ).
//!
//! Each level of the search chooses a version for one needed cookbook. A
//! version is refused at once when a constraint already in force excludes it,
//! when its depends exclude a version chosen earlier, or when its depends
//! leave some other cookbook no version at all (forward checking), so a dead
//! end shows at the choice that causes it rather than many levels later.
//!
//! Every refusal records the earlier levels that caused it. When a cookbook
//! runs out of versions, the union of those levels (its conflict set) says
//! which earlier choices must change; the search jumps straight back to the
//! latest of them, skipping the choices in between that had nothing to do
//! with it. Without that, two cookbooks far apart in the run list that
//! disagree would make it retry every combination of the cookbooks between
//! them. A cookbook that is needed only because a chosen version depends on
//! it has that choice in its conflict set too: change it, and the cookbook
//! may not be needed at all. An empty conflict set means no choice can help.
//!
//! Each level keeps the first explanation of its refusals, preferring a
//! concrete one (a cookbook left with no version, or none pushed) over a
//! clash with an earlier choice, and hands it back when it fails; so the
//! error is about the newest versions, the ones the operator expects.

use std::collections::{BTreeMap, BTreeSet};

use semver::VersionReq;

use super::{Candidate, Clash, Constraint, Origin, Resolution, SolveError};

pub(super) struct Search<'a> {
    available: &'a BTreeMap<String, Vec<Candidate>>,
    /// Pins and role constraints by cookbook.
    statics: BTreeMap<&'a str, Vec<&'a Constraint>>,
    index: BTreeMap<&'a str, usize>,
    books: Vec<Book<'a>>,
    /// Needed cookbooks in the order they became needed: roots first.
    order: Vec<usize>,
    levels: Vec<Level>,
    steps: usize,
    step_limit: usize,
}

/// A cookbook the search has met.
struct Book<'a> {
    name: &'a str,
    /// Newest first, one per version.
    candidates: Vec<&'a Candidate>,
    /// Per candidate: admitted by the pins and role constraints.
    allowed: Vec<bool>,
    statics: Vec<&'a Constraint>,
    /// The depends of chosen versions on this cookbook, shallowest level first.
    active: Vec<Active<'a>>,
    chosen: Option<usize>,
    /// The level that chose it, while `chosen` is set.
    level: usize,
    /// Chosen versions that depend on it, plus one for a root.
    needs: usize,
    /// The level whose choice first made it needed (None for a root).
    needed_at: Option<usize>,
}

/// A depends in force: chosen at `level`, `books[from].candidates[candidate]` wants `req`.
struct Active<'a> {
    level: usize,
    from: usize,
    candidate: usize,
    req: &'a VersionReq,
}

/// One choice point.
struct Level {
    book: usize,
    /// The next candidate to try.
    next: usize,
    /// Earlier levels whose choices refused this cookbook's versions.
    conflict: BTreeSet<usize>,
    why: Option<SolveError>,
    /// `order.len()` before this level's choice: what to truncate back to.
    order_len: usize,
}

/// Why one candidate was refused: the earlier levels to blame, and the
/// explanation if the level still wants one.
struct Refusal {
    blame: Vec<usize>,
    why: Option<SolveError>,
}

impl Level {
    fn wants_why(&self) -> bool {
        matches!(self.why, None | Some(SolveError::Incompatible(_)))
    }

    fn refuse(&mut self, blame: impl IntoIterator<Item = usize>, why: Option<SolveError>) {
        self.conflict.extend(blame);
        if let Some(why) = why
            && self.wants_why()
            && (self.why.is_none() || !matches!(why, SolveError::Incompatible(_)))
        {
            self.why = Some(why);
        }
    }
}

impl<'a> Search<'a> {
    pub(super) fn new(
        roots: &'a [(String, Origin)],
        constraints: &'a [Constraint],
        available: &'a BTreeMap<String, Vec<Candidate>>,
        step_limit: usize,
    ) -> Result<Self, SolveError> {
        let mut statics: BTreeMap<&str, Vec<&Constraint>> = BTreeMap::new();
        for c in constraints {
            statics.entry(c.cookbook.as_str()).or_default().push(c);
        }
        let mut search = Search {
            available,
            statics,
            index: BTreeMap::new(),
            books: Vec::new(),
            order: Vec::new(),
            levels: Vec::new(),
            steps: 0,
            step_limit,
        };
        for (name, origin) in roots {
            let Some(b) = search.intern(name) else {
                return Err(SolveError::Missing {
                    cookbook: name.clone(),
                    needed_by: origin.clone(),
                });
            };
            if search.books[b].needs == 0 {
                search.books[b].needs = 1;
                search.order.push(b);
            }
        }
        Ok(search)
    }

    pub(super) fn run(mut self) -> Result<Resolution, SolveError> {
        let mut open_next = true;
        loop {
            if open_next {
                let mut unchosen = self
                    .order
                    .iter()
                    .filter(|&&b| self.books[b].chosen.is_none());
                let Some(&b) = unchosen.next() else {
                    return Ok(self.resolution());
                };
                let book = &self.books[b];
                self.levels.push(Level {
                    book: b,
                    next: 0,
                    conflict: book.needed_at.into_iter().collect(),
                    why: None,
                    order_len: self.order.len(),
                });
            }
            open_next = self.choose_next()?;
            if !open_next {
                self.backjump()?;
            }
        }
    }

    /// The book for a cookbook name, created on first sight; None when no
    /// version of it has been pushed.
    fn intern(&mut self, name: &'a str) -> Option<usize> {
        if let Some(&b) = self.index.get(name) {
            return Some(b);
        }
        let pushed = self.available.get(name).filter(|v| !v.is_empty())?;
        let mut candidates: Vec<&Candidate> = pushed.iter().collect();
        candidates.sort_by(|x, y| y.version.cmp(&x.version));
        candidates.dedup_by(|later, earlier| later.version == earlier.version);
        let statics = self.statics.get(name).cloned().unwrap_or_default();
        let allowed = candidates
            .iter()
            .map(|c| {
                let v = &c.version;
                statics.iter().all(|s| s.req.matches(v))
                    && (v.pre.is_empty() || !statics.is_empty())
            })
            .collect();
        let b = self.books.len();
        self.books.push(Book {
            name,
            candidates,
            allowed,
            statics,
            active: Vec::new(),
            chosen: None,
            level: 0,
            needs: 0,
            needed_at: None,
        });
        self.index.insert(name, b);
        Some(b)
    }

    /// Choose the next acceptable version at the top level; false when none is left.
    fn choose_next(&mut self) -> Result<bool, SolveError> {
        let l = self.levels.len() - 1;
        let b = self.levels[l].book;
        while self.levels[l].next < self.books[b].candidates.len() {
            let i = self.levels[l].next;
            self.levels[l].next += 1;
            if !self.books[b].allowed[i] {
                continue;
            }
            self.steps += 1;
            if self.steps > self.step_limit {
                return Err(SolveError::StepLimit {
                    steps: self.step_limit,
                });
            }
            let version = &self.books[b].candidates[i].version;
            // Active depends are in level order: the first that excludes is the shallowest.
            if let Some(a) = self.books[b]
                .active
                .iter()
                .find(|a| !a.req.matches(version))
            {
                self.levels[l].conflict.insert(a.level);
                continue;
            }
            match self.check_depends(b, i) {
                Ok(()) => {
                    self.choose(l, b, i);
                    return Ok(true);
                }
                Err(r) => self.levels[l].refuse(r.blame, r.why),
            }
        }
        Ok(false)
    }

    /// Can `books[b].candidates[i]`'s depends be met, given the choices so far?
    fn check_depends(&mut self, b: usize, i: usize) -> Result<(), Refusal> {
        let wants_why = self.levels.last().is_some_and(Level::wants_why);
        let (name, candidate) = (self.books[b].name, self.books[b].candidates[i]);
        let origin = || Origin::DependsOf {
            cookbook: name.to_string(),
            version: candidate.version.clone(),
        };
        for (dep, req) in &candidate.depends {
            let Some(d) = self.intern(dep) else {
                let why = SolveError::Missing {
                    cookbook: dep.clone(),
                    needed_by: origin(),
                };
                return Err(Refusal {
                    blame: Vec::new(),
                    why: wants_why.then_some(why),
                });
            };
            let chosen = if d == b {
                Some(i)
            } else {
                self.books[d].chosen
            };
            let chosen = chosen.map(|x| &self.books[d].candidates[x].version);
            if chosen.is_some_and(|version| req.matches(version)) {
                continue;
            }
            // No version of `dep` at all fits: say so, whatever was chosen.
            if !self.has_room(d, req) {
                let extra = Constraint {
                    cookbook: dep.clone(),
                    req: req.clone(),
                    origin: origin(),
                };
                return Err(Refusal {
                    blame: self.blame_for_no_room(d, req),
                    why: wants_why.then(|| self.unsatisfiable(d, Some(extra))),
                });
            }
            if let Some(version) = chosen {
                let why = SolveError::Incompatible(Box::new(Clash {
                    cookbook: name.to_string(),
                    version: candidate.version.clone(),
                    dep: dep.clone(),
                    req: req.clone(),
                    chosen: version.clone(),
                }));
                // Depending on itself, a version can only refuse itself.
                let blame = if d == b {
                    vec![]
                } else {
                    vec![self.books[d].level]
                };
                return Err(Refusal {
                    blame,
                    why: wants_why.then_some(why),
                });
            }
        }
        Ok(())
    }

    /// Is some version of `d` admitted by `req` and every constraint in force?
    fn has_room(&self, d: usize, req: &VersionReq) -> bool {
        let book = &self.books[d];
        book.candidates.iter().enumerate().any(|(j, c)| {
            book.allowed[j]
                && req.matches(&c.version)
                && book.active.iter().all(|a| a.req.matches(&c.version))
        })
    }

    /// The levels whose depends exclude the versions of `d` that `req` admits.
    fn blame_for_no_room(&self, d: usize, req: &VersionReq) -> Vec<usize> {
        let book = &self.books[d];
        let admitted = (book.candidates.iter().enumerate())
            .filter(|&(j, c)| book.allowed[j] && req.matches(&c.version));
        admitted
            .filter_map(|(_, c)| book.active.iter().find(|a| !a.req.matches(&c.version)))
            .map(|a| a.level)
            .collect()
    }

    /// Record the choice of `books[b].candidates[i]` at level `l`.
    fn choose(&mut self, l: usize, b: usize, i: usize) {
        let candidate = self.books[b].candidates[i];
        self.books[b].chosen = Some(i);
        self.books[b].level = l;
        for (dep, req) in &candidate.depends {
            let d = self.index[dep.as_str()];
            let book = &mut self.books[d];
            book.active.push(Active {
                level: l,
                from: b,
                candidate: i,
                req,
            });
            book.needs += 1;
            if book.needs == 1 {
                book.needed_at = Some(l);
                self.order.push(d);
            }
        }
    }

    /// Undo level `l`'s choice; every deeper level is already undone.
    fn unchoose(&mut self, l: usize) {
        let b = self.levels[l].book;
        let Some(i) = self.books[b].chosen.take() else {
            return;
        };
        for dep in self.books[b].candidates[i].depends.keys() {
            let book = &mut self.books[self.index[dep.as_str()]];
            book.active.pop();
            book.needs -= 1;
            if book.needs == 0 {
                book.needed_at = None;
            }
        }
        self.order.truncate(self.levels[l].order_len);
    }

    /// The top level has no version left: jump back to the latest level in
    /// its conflict set, or fail when that set is empty.
    fn backjump(&mut self) -> Result<(), SolveError> {
        let failed = self.levels.pop().expect("backjump runs with a level open");
        let Some(&h) = failed.conflict.last() else {
            return Err(failed
                .why
                .unwrap_or_else(|| self.unsatisfiable(failed.book, None)));
        };
        // Explained before unwinding: the constraints in force are part of the story.
        let why = match failed.why {
            Some(why) => Some(why),
            None if self.levels[h].wants_why() => Some(self.unsatisfiable(failed.book, None)),
            None => None,
        };
        while self.levels.len() > h + 1 {
            self.unchoose(self.levels.len() - 1);
            self.levels.pop();
        }
        self.unchoose(h);
        let blame = failed.conflict.range(..h).copied();
        self.levels[h].refuse(blame, why);
        Ok(())
    }

    /// `d` has no version left under the constraints in force (and `extra`):
    /// name those that exclude something.
    fn unsatisfiable(&self, d: usize, extra: Option<Constraint>) -> SolveError {
        let book = &self.books[d];
        let depends = book.active.iter().map(|a| {
            let from = &self.books[a.from];
            Constraint {
                cookbook: book.name.to_string(),
                req: a.req.clone(),
                origin: Origin::DependsOf {
                    cookbook: from.name.to_string(),
                    version: from.candidates[a.candidate].version.clone(),
                },
            }
        });
        let mut constraints: Vec<Constraint> = Vec::new();
        let all = book
            .statics
            .iter()
            .map(|&c| c.clone())
            .chain(depends)
            .chain(extra);
        for c in all {
            let excludes = book.candidates.iter().any(|v| !c.req.matches(&v.version));
            if excludes && !constraints.contains(&c) {
                constraints.push(c);
            }
        }
        SolveError::Unsatisfiable {
            cookbook: book.name.to_string(),
            constraints,
            available: book
                .candidates
                .iter()
                .rev()
                .map(|c| c.version.clone())
                .collect(),
        }
    }

    fn resolution(&self) -> Resolution {
        let mut versions = BTreeMap::new();
        let mut unpinned = Vec::new();
        for &b in &self.order {
            let book = &self.books[b];
            let i = book
                .chosen
                .expect("every needed cookbook is chosen when the search ends");
            versions.insert(book.name.to_string(), book.candidates[i].version.clone());
            let pinned =
                (book.statics.iter()).any(|c| matches!(c.origin, Origin::EnvironmentPin(_)));
            if !pinned {
                unpinned.push(book.name.to_string());
            }
        }
        unpinned.sort();
        Resolution { versions, unpinned }
    }
}
