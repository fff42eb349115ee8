<?php
// A visit counter kept in the PHP session: served by any web node, it goes
// on counting when the load balancer sends the next request elsewhere.
session_start();
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
header('Content-Type: text/plain');
echo 'visits=' . $_SESSION['visits'] . "\n";
echo 'node=' . gethostname() . "\n";
echo 'handler=' . ini_get('session.save_handler') . "\n";
